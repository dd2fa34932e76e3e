"""Vision-language rationale teachers: the parser, a real local OpenAI-compatible server, and a tiny local Llava."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from domains.driving.vlm import DRIVING_TASK
from suite.errors import TeacherError
from suite.teachers import (
    TEACHERS,
    HFVisionLanguageTeacher,
    OpenAICompatibleVLMTeacher,
    TeacherBatchError,
    TeacherOutputStore,
)
from suite.teachers.vision_language import (
    decode_image_png_base64,
    encode_image_png_base64,
    vlm_inputs,
    vlm_messages,
)
from tests.fake_llm import LocalServer

# The backends are generic; the driving pack's task (perception -> prediction -> planning) is the one tested here.
RATIONALE_STAGES = DRIVING_TASK.sections
parse_rationale, rationale_prompt = DRIVING_TASK.parse, DRIVING_TASK.prompt

RATIONALE = {
    "perception": "A cyclist 12 m ahead in the right lane; the traffic light is red.",
    "prediction": "The cyclist keeps going straight at about 4 m/s.",
    "planning": "Slow down and stop before the line, because the light is red.",
}
ANSWER = "\n".join(f"{stage.capitalize()}: {RATIONALE[stage]}" for stage in RATIONALE_STAGES)


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(12 + 4 * i, 20, 3), dtype=np.uint8) for i in range(n)]


# -- parsing ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        ANSWER,
        "Sure, here is my analysis.\n\n"
        + "\n".join(f"**{s.capitalize()}:** {RATIONALE[s]}" for s in RATIONALE_STAGES)
        + "\n",
        "\n".join(f"{i}. {s.upper()} - {RATIONALE[s]}" for i, s in enumerate(RATIONALE_STAGES, 1)),
        "\n".join(f"  - *{s}*:   {RATIONALE[s]}  " for s in RATIONALE_STAGES),
        "\n\n".join(f"## {s.capitalize()}\n{RATIONALE[s]}" for s in RATIONALE_STAGES),
    ],
    ids=["plain", "bold", "numbered", "bullets", "headings"],
)
def test_parse_rationale_tolerates_markdown(text):
    assert parse_rationale(text) == RATIONALE


def test_parse_rationale_keeps_multi_line_sections_and_ignores_stage_words_in_prose():
    text = (
        "**Perception:**\n"
        "- cyclist 12 m ahead, right lane\n\n"
        "- red light\n"
        "**Prediction:** the cyclist goes straight;\n"
        "perception of the light is clear.\n"  # a stage word in prose, not a header
        "**Planning:**\n"
        "Stop.\n"
        "Planning ahead avoids harsh braking.\n"
    )
    assert parse_rationale(text) == {
        "perception": "- cyclist 12 m ahead, right lane\n- red light",
        "prediction": "the cyclist goes straight;\nperception of the light is clear.",
        "planning": "Stop.\nPlanning ahead avoids harsh braking.",
    }


def test_parse_rationale_names_missing_sections_without_quoting_the_answer():
    secret = "Perception: a pedestrian named Alice crossing\nPlanning: stop"
    with pytest.raises(TeacherError, match=r"lacks the prediction section") as info:
        parse_rationale(secret)
    assert "Alice" not in str(info.value)
    with pytest.raises(TeacherError, match=r"lacks the perception, planning section"):
        parse_rationale("Prediction: the car turns left.\nPlanning:\n")  # an empty section counts as missing
    with pytest.raises(TeacherError, match=r"perception, prediction, planning"):
        parse_rationale("I cannot see the image.")


def test_prompt_asks_for_the_three_stages_in_order_and_holds_the_context():
    plain = rationale_prompt()
    positions = [plain.index(f"{stage.capitalize()}:") for stage in RATIONALE_STAGES]
    assert positions == sorted(positions)
    with_context = rationale_prompt("ego speed 8.3 m/s; allowed actions: keep, stop, turn_left")
    assert "ego speed 8.3 m/s; allowed actions: keep, stop, turn_left" in with_context
    assert with_context.endswith(plain.split("\n\n")[-1])  # the format instruction comes last
    assert rationale_prompt("  ") == plain


def test_png_round_trip_and_bad_images():
    [image] = frames(1)
    np.testing.assert_array_equal(decode_image_png_base64(encode_image_png_base64(image)), image)
    for bad in (image.astype(np.float32), image[..., :2], image[..., 0], torch.from_numpy(image)):
        with pytest.raises(TeacherError, match=r"uint8 numpy arrays of shape \(H, W, 3\)"):
            encode_image_png_base64(bad)
    with pytest.raises(TeacherError, match="2 images but 1 contexts"):
        vlm_inputs(frames(2), ["only one"])


# -- OpenAI-compatible server -----------------------------------------------------------------------------------------


class VLMServer(LocalServer):
    """``/v1/chat/completions`` answering ``reply(text_part)``; a reply of ``None`` is an HTTP 400."""

    def __init__(self, reply=lambda text: ANSWER):
        super().__init__()
        self.reply = reply
        self.bodies: list[dict] = []

    def handle(self, handler, body):
        with self.lock:
            self.bodies.append(body)
        [text] = [part["text"] for part in body["messages"][-1]["content"] if part["type"] == "text"]
        answer = self.reply(text)
        if answer is None:
            self.send_json(handler, 400, b"{}")
            return
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
        self.send_json(handler, 200, json.dumps({"choices": [choice]}).encode())

    def images(self) -> list[np.ndarray]:
        """The image of each request, decoded from its data URL."""
        decoded = []
        for body in self.bodies:
            [url] = [p["image_url"]["url"] for p in body["messages"][-1]["content"] if p["type"] == "image_url"]
            assert url.startswith("data:image/png;base64,")
            decoded.append(decode_image_png_base64(url.removeprefix("data:image/png;base64,")))
        return decoded


def vlm(url: str) -> OpenAICompatibleVLMTeacher:
    return OpenAICompatibleVLMTeacher(
        url, "qwen-vl", DRIVING_TASK, max_tokens=300, concurrency=2, timeout_s=5, max_retries=0
    )


def test_openai_vlm_sends_the_image_as_a_png_data_url_and_parses_the_answer():
    images = frames(2)
    with VLMServer() as server:
        teacher = vlm(server.url)
        outputs = teacher.answer(vlm_inputs(images, ["ego speed 5 m/s", None]))

    assert teacher.teacher_id == "openai-vlm:qwen-vl"
    assert [o.text for o in outputs] == [ANSWER, ANSWER]
    assert [o.meta["sections"] for o in outputs] == [RATIONALE, RATIONALE]
    assert all(o.meta["finish_reason"] == "stop" and "parse_error" not in o.meta for o in outputs)
    # Requests run concurrently, so each is matched to its input by the context it carries.
    contexts = ["ego speed 5 m/s" in body["messages"][-1]["content"][0]["text"] for body in server.bodies]
    sent = dict(zip(contexts, server.images(), strict=True))
    for image, has_context in zip(images, (True, False), strict=True):
        assert sent[has_context].shape == image.shape
        np.testing.assert_array_equal(sent[has_context], image)
    for body in server.bodies:
        assert body["model"] == "qwen-vl" and body["max_tokens"] == 300 and body["temperature"] == 0.0
        [message] = body["messages"]
        assert message["role"] == "user" and [p["type"] for p in message["content"]] == ["text", "image_url"]
        positions = [message["content"][0]["text"].index(f"{s.capitalize()}:") for s in RATIONALE_STAGES]
        assert positions == sorted(positions)
    assert server.bodies[contexts.index(True)]["messages"] == vlm_messages(DRIVING_TASK, images[0], "ego speed 5 m/s")


def test_a_malformed_answer_keeps_the_raw_text_with_the_parse_error():
    with VLMServer(lambda text: "I see a road.\nPlanning: keep lane.") as server:
        [output] = vlm(server.url).answer(vlm_inputs(frames(1)))
    assert output.text == "I see a road.\nPlanning: keep lane."
    assert output.meta["sections"] is None
    assert "lacks the perception, prediction section" in output.meta["parse_error"]
    with VLMServer(lambda text: "no idea") as server:
        assert vlm(server.url).explain(frames(2)) == [None, None]


def test_store_run_twice_asks_the_server_once(tmp_path):
    inputs = vlm_inputs(frames(3), ["left turn allowed", None, "ego speed 0 m/s"])
    with VLMServer() as server:
        first = TeacherOutputStore(tmp_path).run(vlm(server.url), inputs, batch_size=2, progress=False)
        assert len(server.bodies) == 3
        again = TeacherOutputStore(tmp_path).run(vlm(server.url), inputs, batch_size=2, progress=False)
        assert len(server.bodies) == 3  # all answers came from the store
        other_context = [{**inputs[0], "context": "ego speed 9 m/s"}]
        TeacherOutputStore(tmp_path).run(vlm(server.url), other_context, progress=False)
        assert len(server.bodies) == 4  # another context is another input
    assert [o.meta for o in again] == [o.meta for o in first]
    assert all(o.meta["sections"] == RATIONALE for o in again)


def test_a_failed_request_keeps_the_parsed_answers_of_its_batch():
    with (
        VLMServer(lambda text: None if "REJECT" in text else ANSWER) as server,
        pytest.raises(TeacherBatchError) as info,
    ):
        vlm(server.url).answer(vlm_inputs(frames(2), [None, "REJECT"]))
    assert list(info.value.answered) == [0] and list(info.value.failures) == [1]
    assert info.value.answered[0].meta["sections"] == RATIONALE
    assert "HTTP 400" in info.value.failures[1]


def test_inputs_must_be_image_dicts():
    teacher = vlm("http://127.0.0.1:9")
    with pytest.raises(TeacherError, match="input 1: expected"):
        teacher.answer([vlm_inputs(frames(1))[0], "a text prompt"])


def test_both_backends_are_registered():
    assert TEACHERS.get("openai-vlm") is OpenAICompatibleVLMTeacher
    assert TEACHERS.get("hf-vlm") is HFVisionLanguageTeacher


# -- a tiny local Llava -----------------------------------------------------------------------------------------------

# No stage names in the vocabulary: the random model cannot write a parsable rationale by chance.
WORDS = ["the", "car", "cyclist", "stops", "turns", "left", "right", "ahead", "slow", "red", "light", ":", "."]
SPECIAL = ["[PAD]", "[UNK]", "[EOS]", "<image>"]
VOCAB = {token: i for i, token in enumerate(SPECIAL + WORDS)}
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    " [EOS] {% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


def save_tiny_llava(path, chat_template: str | None) -> None:
    """A CLIP vision tower (16x16 images, 8x8 patches -> 4 image tokens) + a 1-layer Llama, both 16 wide."""
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = tf.PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    image_processor = tf.CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = tf.LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=chat_template,
    )  # fmt: skip
    vision = tf.CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8,
    )  # fmt: skip
    text = tf.LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=512, pad_token_id=VOCAB["[PAD]"], eos_token_id=VOCAB["[EOS]"],
        bos_token_id=VOCAB["[EOS]"],
    )  # fmt: skip
    config = tf.LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=VOCAB["<image>"], vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )  # fmt: skip
    torch.manual_seed(0)
    tf.LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm")
    save_tiny_llava(root / "chat", CHAT_TEMPLATE)
    save_tiny_llava(root / "plain", None)
    return root


@pytest.mark.parametrize("folder", ["chat", "plain"])
def test_hf_vlm_answers_deterministically_and_keeps_unparsable_text(llava, folder, tmp_path):
    teacher = HFVisionLanguageTeacher(llava / folder, DRIVING_TASK, max_new_tokens=6)
    assert teacher._model is None  # loads lazily
    inputs = vlm_inputs(frames(2), ["ego speed 3 m/s", None])
    first = teacher.answer(inputs)
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.model.parameters())
    prompt = teacher.prompt("ego speed 3 m/s")
    assert "<image>" in prompt and (prompt.startswith("user: <image>") == (folder == "chat"))

    second = TeacherOutputStore(tmp_path).run(teacher, inputs, progress=False)
    assert [o.text for o in first] == [o.text for o in second]
    for output in first:
        assert output.text and set(output.text.split()) <= set(WORDS)  # generated words only, no prompt echo
        assert output.meta["sections"] is None
        assert "lacks the perception, prediction, planning section" in output.meta["parse_error"]
    assert teacher.explain(frames(2)) == [None, None]


def test_hf_vlm_id_names_the_folder_and_changes_with_the_weights(llava, tmp_path):
    import shutil

    from suite.errors import ModelNotFoundError

    folder = tmp_path / "copy"
    shutil.copytree(llava / "chat", folder)
    teacher = HFVisionLanguageTeacher(folder, DRIVING_TASK)
    assert teacher.teacher_id.startswith(f"{folder.resolve()}@")
    assert HFVisionLanguageTeacher(folder, DRIVING_TASK).teacher_id == teacher.teacher_id
    with open(folder / "model.safetensors", "ab") as weights:
        weights.write(b"\0" * 8)  # same config, different weights file
    assert HFVisionLanguageTeacher(folder, DRIVING_TASK).teacher_id != teacher.teacher_id
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        HFVisionLanguageTeacher(tmp_path, DRIVING_TASK)


def test_a_task_of_another_domain_parses_its_own_sections():
    from suite.teachers.vision_language import VisionTask

    radiology = VisionTask("The image is a chest radiograph.", "Answer with Findings: and Impression:.",
                           ("findings", "impression"))  # fmt: skip
    answer = "**Findings:** Clear lungs.\nNo effusion.\n**Impression:** Normal study."
    assert radiology.parse(answer) == {"findings": "Clear lungs.\nNo effusion.", "impression": "Normal study."}
    assert radiology.digest != DRIVING_TASK.digest
    with pytest.raises(TeacherError, match="lacks the impression section"):
        radiology.parse("Findings: clear.")
