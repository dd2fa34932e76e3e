"""Rationale distillation end to end on a tiny T5: lambda = 0 is label-only training exactly, uniform KPOD weights
are plain step-by-step exactly, the rationale task measurably changes the student, teacher rationales come through
the store with a structured prompt and the disagreeing ones are dropped."""

from __future__ import annotations

import random

import pytest
import torch

from suite.losses.rationale import RationaleConfig, token_nll
from suite.rationale import (
    RationaleExample,
    collate,
    encode_items,
    keep_consistent,
    parse_structured,
    teacher_rationales,
    train_rationale_student,
)
from suite.students import build_student
from suite.students.generative import SpecialTokens
from suite.students.rationale import LabelPath
from suite.students.text import build_vocab_tokenizer
from suite.teachers.openai_compat import OpenAICompatibleTeacher
from suite.trainer import TrainerConfig
from tests.fake_llm import TextServer

SYMPTOMS = {0: ["fever", "cough", "chills"], 1: ["rash", "itch", "redness"]}
LABELS = ["flu", "eczema"]


def examples(n: int) -> list[RationaleExample]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(SYMPTOMS[label]) for _ in range(3)] + [rng.choice(["today", "since", "monday"])]
        rationale = f"{words[0]} and {words[1]} point to {LABELS[label]} . so the answer is {LABELS[label]} ."
        out.append(RationaleExample(" ".join(words), label, rationale))
    return out


@pytest.fixture(scope="module")
def setup():
    data = examples(32)
    tokenizer = build_vocab_tokenizer([e.text for e in data] + [e.rationale for e in data], vocab_size=80)
    ids = SpecialTokens.of(tokenizer)
    kwargs = {"num_labels": 2, "vocab_size": len(tokenizer), "pad_id": ids.pad, "start_id": ids.start,
              "end_id": ids.end, "size": "2m"}  # fmt: skip
    return tokenizer, ids, kwargs, encode_items(tokenizer, data, 16, 24)


def fresh(kwargs):
    torch.manual_seed(0)
    return build_student("rationale-seq2seq", **kwargs)


def config(tmp_path, name: str) -> TrainerConfig:
    return TrainerConfig(output_dir=str(tmp_path / name), epochs=3, batch_size=8, lr=3e-3, warmup_ratio=0.0,
                         progress=False, tensorboard=False, seed=0, log_every=1000)  # fmt: skip


def same_parameters(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_lambda_zero_is_label_only_training(setup, tmp_path):
    _, ids, kwargs, items = setup
    label_only = train_rationale_student(fresh(kwargs), items, config(tmp_path, "a"), pad_id=ids.pad,
                                         weights={"task": 1.0})  # fmt: skip
    zero = train_rationale_student(fresh(kwargs), items, config(tmp_path, "b"), pad_id=ids.pad,
                                   weights={"task": 1.0, "rationale": 0.0})  # fmt: skip
    assert same_parameters(label_only, zero)


def test_uniform_kpod_weights_are_plain_step_by_step(setup, tmp_path):
    _, ids, kwargs, items = setup
    uniform = [{**i, "rationale_weights": [1.0] * len(i["rationale_labels"])} for i in items]
    plain = train_rationale_student(fresh(kwargs), uniform, config(tmp_path, "p"), pad_id=ids.pad,
                                    weights={"task": 1.0, "rationale": 0.5})  # fmt: skip
    kpod = train_rationale_student(fresh(kwargs), uniform, config(tmp_path, "k"), pad_id=ids.pad,
                                   weights={"task": 1.0, "rationale": 0.5},
                                   rationale=RationaleConfig(token_weights=True))  # fmt: skip
    assert same_parameters(plain, kpod)


def test_a_kpod_checkpoint_from_before_every_rationale_step_counts_is_never_kept_as_the_best(setup, tmp_path):
    """Dev accuracy falling from the first evaluation on would keep step 1 and stop at step 2; KPOD's ramp (half of
    12 steps) moves both the best weights and early stopping's count to step 6 and after."""
    import dataclasses
    import json

    _, ids, kwargs, items = setup
    evaluated = []

    def falling_accuracy(distiller) -> dict[str, float]:
        evaluated.append(len(evaluated) + 1)
        return {"accuracy": 1.0 / len(evaluated)}

    run = dataclasses.replace(config(tmp_path, "ramp"), eval_every=1, early_stopping_patience=1)
    kpod = RationaleConfig(token_weights=True, start_fraction=0.5, ramp=0.5)
    train_rationale_student(fresh(kwargs), items, run, pad_id=ids.pad, weights={"task": 1.0, "rationale": 1.0},
                            rationale=kpod, evaluate=falling_accuracy)  # fmt: skip
    assert json.loads((tmp_path / "ramp" / "best" / "step.json").read_text())["step"] == 6
    assert len(evaluated) == 7  # step 6 is the first that counts, step 7 the one evaluation without improvement
    evaluated.clear()
    kpod = dataclasses.replace(kpod, select_after_ramp=False)
    train_rationale_student(fresh(kwargs), items, dataclasses.replace(run, output_dir=str(tmp_path / "any")),
                            pad_id=ids.pad, weights={"task": 1.0, "rationale": 1.0}, rationale=kpod,
                            evaluate=falling_accuracy)  # fmt: skip
    assert json.loads((tmp_path / "any" / "best" / "step.json").read_text())["step"] == 1
    assert len(evaluated) == 2


def rationale_nll(student, items, pad_id) -> float:
    batch = collate(pad_id, with_rationales=True)(items)
    with torch.no_grad():
        out = student.eval()(**batch["inputs"])
    labels = batch["rationale_labels"]
    return (token_nll(out["rationale_logits"], labels).sum() / (labels != -100).sum()).item()


def test_the_rationale_task_changes_the_student_and_is_learned(setup, tmp_path):
    tokenizer, ids, kwargs, items = setup
    before = rationale_nll(fresh(kwargs), items, ids.pad)
    label_only = train_rationale_student(fresh(kwargs), items, config(tmp_path, "l"), pad_id=ids.pad,
                                         weights={"task": 1.0})  # fmt: skip
    kpod = RationaleConfig(token_weights=True, start_fraction=0.5, ramp=0.5)
    stepwise = train_rationale_student(fresh(kwargs), items, config(tmp_path, "s"), pad_id=ids.pad,
                                       weights={"task": 1.0, "rationale": 1.0}, rationale=kpod)  # fmt: skip
    assert not same_parameters(label_only.seq2seq.get_encoder(), stepwise.seq2seq.get_encoder())
    assert rationale_nll(stepwise, items, ids.pad) < 0.5 * before  # it learned to write the rationales
    batch = collate(ids.pad, with_rationales=False)(items[:4])
    shipped = LabelPath(stepwise).eval()(**batch["inputs"])
    assert torch.allclose(shipped, stepwise.eval()(**batch["inputs"])["logits"])
    explained = stepwise.explain(**batch["inputs"], max_new_tokens=12)
    assert explained.shape[0] == 4
    check_pack_scores_the_written_rationales(stepwise, tokenizer)


def check_pack_scores_the_written_rationales(student, tokenizer):
    """The pack's rationale metrics on a trained student: agreement with its own label, and ERASER scores of the
    words it cites (its rationales cite symptom words that decide the label, unlike random words of the case)."""
    from types import SimpleNamespace

    from suite.rationale_pack import RationalePack

    cases = [SimpleNamespace(text=e.text, text_pair="", label=e.label, rationale="") for e in examples(40)[32:]]
    pack = object.__new__(RationalePack)  # the metrics need only these attributes, not the stages
    pack.task = SimpleNamespace(labels=LABELS, explain_examples=8, max_rationale=24, max_length=16,
                                rationale_source="teacher")  # fmt: skip
    pack.data, pack.tokenizer, pack.rationale_outputs = SimpleNamespace(tests={"test": cases}), tokenizer, {}
    probs = pack._label_probs(student)([c.text for c in cases], [""] * len(cases))
    written = pack.explain(student, cases[:8])
    scores = pack.rationale_metrics(SimpleNamespace(model=student, variant=SimpleNamespace(name="s")), probs, written)
    assert scores["rationale_agreement"] >= 0.75
    assert scores["eraser_cases"] == 8 and "rationale_rougeL" not in scores  # no gold rationales here
    assert scores["comprehensiveness"] > scores["comprehensiveness_random"]
    assert scores["sufficiency"] < scores["sufficiency_random"]


def test_the_rationale_term_without_rationales_or_kd_without_teacher_logits_is_refused(setup, tmp_path):
    _, ids, kwargs, items = setup
    bare = [{**i, "rationale_labels": [], "rationale_weights": [], "rationale_steps": []} for i in items]
    with pytest.raises(ValueError, match="needs items with rationales"):
        train_rationale_student(fresh(kwargs), bare, config(tmp_path, "x"), pad_id=ids.pad,
                                weights={"task": 1.0, "rationale": 1.0})  # fmt: skip
    with pytest.raises(ValueError, match="teacher's logits"):
        train_rationale_student(fresh(kwargs), items, config(tmp_path, "y"), pad_id=ids.pad,
                                weights={"task": 1.0, "kd": 1.0})  # fmt: skip


def test_structured_answers_parse_into_reasoning_and_a_stated_choice():
    parsed = parse_structured("Reasoning: fever and cough. Flu fits.\nAnswer: Flu.", LABELS)
    assert parsed.text == "fever and cough. Flu fits." and parsed.stated_answer == "flu"
    assert parsed == parse_structured("reasoning:fever and cough. Flu fits.\nANSWER: flu", LABELS)
    assert parse_structured("It is probably a cold.", LABELS).stated_answer is None


def test_teacher_rationales_come_once_through_the_store_and_disagreeing_ones_are_dropped(tmp_path):
    data = examples(6)

    def reply(prompt: str):
        case = prompt.rsplit("Case:\n", 1)[1]
        said = "eczema" if "monday" in case else "flu"  # a teacher that is wrong on some cases
        text = f"Reasoning: the case says {case.split()[0]}. Answer: {said}"
        return text, [], "stop"

    with TextServer(reply) as server:
        backend = OpenAICompatibleTeacher(server.url, "teacher", max_retries=0)
        rationales = teacher_rationales(backend, [e.text for e in data], LABELS, tmp_path, progress=False)
        again = teacher_rationales(backend, [e.text for e in data], LABELS, tmp_path, progress=False)
        assert server.requests == len(data) and again == rationales
    kept, dropped = keep_consistent(data, rationales, LABELS)
    disagree = sum(r.stated_answer != LABELS[e.label] for e, r in zip(data, rationales, strict=True))
    assert dropped == disagree > 0
    for example, rationale, out in zip(data, rationales, kept, strict=True):
        assert out.rationale == (rationale.text if rationale.stated_answer == LABELS[example.label] else "")


class BagOfEmbeddings(torch.nn.Module):
    """logits_y = sum_t w_y . e_t: gradient x input of token t for class y is exactly e_t . w_y."""

    def __init__(self, vocab_size: int, favoured: dict[int, int]):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab_size, 4)
        self.head = torch.nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.embed.weight.mul_(0.01)
            self.head.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
            for token, label in favoured.items():  # these tokens push hard towards their label
                self.embed.weight[token] = torch.tensor([5.0, 0, 0, 0]) if label == 0 else torch.tensor([0, 5.0, 0, 0])

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        e = self.embed(input_ids) * attention_mask.unsqueeze(-1)
        return {"logits": self.head(e.sum(1))}


def test_gradient_x_input_and_extractive_rationales_name_the_words_the_teacher_used():
    from suite import hub
    from suite.rationale import attribution_rationales, evidence_words, token_attributions

    tokenizer = hub.load_tokenizer("minilm-l6")
    vocab = tokenizer.get_vocab()
    model = BagOfEmbeddings(len(tokenizer), {vocab["fever"]: 0, vocab["rash"]: 1})
    texts = ["i have had a fever and the chills since monday", "an itchy rash on my arm"]
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    scores = token_attributions(model, batch, torch.tensor([0, 1]))
    e = model.embed(batch["input_ids"]).detach()
    expected = torch.stack([e[0, :, 0].abs(), e[1, :, 1].abs()]) * batch["attention_mask"]
    assert torch.allclose(scores, expected, atol=1e-6)
    words = evidence_words(tokenizer, texts[0], scores[0], top_words=2)
    assert "fever" in words and not set(words) & {"i", "have", "had", "a", "and", "the"}
    assert words == sorted(words, key=texts[0].index)  # in text order
    rationales = attribution_rationales(model, tokenizer, texts, LABELS, top_words=1)
    assert [r.stated_answer for r in rationales] == ["flu", "eczema"]
    assert rationales[0].text == "the case mentions fever, pointing to flu ."
    assert "rash" in rationales[1].text
    differential = attribution_rationales(model, tokenizer, texts, LABELS, top_words=1, differential=True)
    assert differential[0].text == "the case mentions fever; next most likely eczema; pointing to flu ."
    from suite.rationale_pack import stated_answer

    assert [stated_answer(r.text, LABELS) for r in differential] == ["flu", "eczema"]
