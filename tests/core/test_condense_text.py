"""Text dataset distillation: synthetic sentence embeddings, prompt-based synthetic data with drift monitoring and
prompt revision, soft prompts (peft prompt tuning) on a tiny causal LM built here."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from suite.condense.synthetic import (
    DriftMonitor,
    LLMReviser,
    NgramGenerator,
    Request,
    SynthesisConfig,
    TeacherGenerator,
    mmd_rbf,
    synthesize,
)
from suite.condense.text import EmbeddingSet, TextCondenseConfig, distill_embeddings, head_accuracy, train_head
from suite.errors import ConfigError
from suite.teachers import OpenAICompatibleTeacher
from suite.teachers.base import TeacherOutput
from tests.fake_llm import TextServer


def clusters(n: int, seed: int, classes: int = 6, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    centers = np.random.default_rng(0).normal(size=(classes, dim))
    rng = np.random.default_rng(seed)
    y = rng.integers(classes, size=n)
    return (centers[y] + rng.normal(size=(n, dim)) * 1.6).astype(np.float32), y


@pytest.mark.parametrize("method", ["dm", "gm"])
def test_distilled_embeddings_beat_random_real_ones_at_one_per_class(method):
    train, test = clusters(1200, seed=1), clusters(1000, seed=2)
    config = TextCondenseConfig(iterations=150, progress=False)
    scores = {}
    for name in ("random", method):
        accs = []
        for seed in range(3):
            syn = distill_embeddings(*train, per_class=1, method=name, seed=seed, config=config)
            assert syn.vectors.shape == (6, 32) and syn.labels.tolist() == sorted(syn.labels.tolist())
            accs.append(head_accuracy(train_head(syn, 6, seed=seed, epochs=80), *test))
        scores[name] = float(np.mean(accs))
    assert scores[method] > scores["random"] + 0.1, scores


def test_random_returns_real_vectors_and_bad_input_is_named():
    x, y = clusters(100, seed=3)
    syn = distill_embeddings(x, y, per_class=2, method="random", seed=0)
    rows = {tuple(r) for r in x.round(5).tolist()}
    assert all(tuple(v) in rows for v in syn.vectors.numpy().round(5).tolist())
    with pytest.raises(ConfigError, match="one of"):
        distill_embeddings(x, y, 1, method="mtt")
    keep = y != 1
    with pytest.raises(ConfigError, match=r"classes \[1\] have no examples"):
        distill_embeddings(x[keep], y[keep], 1)


def test_soft_labels_train_the_head():
    x, y = clusters(300, seed=4, classes=2)
    soft = torch.nn.functional.one_hot(torch.tensor(1 - y), 2).float()  # every label flipped, as probabilities
    head = train_head(EmbeddingSet(torch.tensor(x), torch.tensor(y), soft), 2, epochs=30)
    assert head_accuracy(head, x, 1 - y) > 0.9  # it learned the soft labels, not the hard ones


def test_mmd_separates_shifted_samples_and_the_monitor_flags_drift():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    same, shifted = rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 1.0
    assert mmd_rbf(real, real) == pytest.approx(0.0, abs=1e-9)
    assert mmd_rbf(shifted, real) > 5 * mmd_rbf(same, real)
    monitor = DriftMonitor(real, factor=3.0)
    value, limit = monitor.check(same)
    assert value < limit
    value, limit = monitor.check(shifted)
    assert value > limit


TEXTS = {
    "flu": ["fever and cough since monday", "high fever with chills and cough", "cough fever and aching muscles"],
    "eczema": ["itchy red rash on the elbows", "dry skin and an itchy rash", "red itchy patches on both hands"],
}


def flat() -> tuple[list[str], list[str]]:
    texts = [t for group in TEXTS.values() for t in group]
    return texts, [label for label, group in TEXTS.items() for _ in group]


def bag_embed(texts: list[str]) -> np.ndarray:
    """Counts of a fixed word list: enough geometry for drift checks without loading an encoder."""
    words = sorted({w for group in TEXTS.values() for t in group for w in t.split()} | {"engine", "wheel", "brake"})
    return np.array([[t.split().count(w) for w in words] for t in texts], dtype=np.float64)


def test_ngram_generator_writes_each_label_from_its_own_texts_and_is_seeded():
    generator = NgramGenerator(*flat())
    requests = [Request("flu", "", seed=s) for s in range(5)] + [Request("eczema", "", seed=s) for s in range(5)]
    texts = generator.generate(requests)
    assert texts == generator.generate(requests)
    flu_words = {w for t in TEXTS["flu"] for w in t.split()}
    eczema_words = {w for t in TEXTS["eczema"] for w in t.split()}
    for text in texts[:5]:
        assert set(text.split()) <= flu_words | eczema_words and set(text.split()) & flu_words
    assert sum(bool(set(t.split()) & eczema_words - flu_words) for t in texts[5:]) == 5
    with pytest.raises(ConfigError, match="no real texts"):
        generator.generate([Request("asthma", "", 0)])


class ScriptedGenerator:
    """Answers from a per-round script and records every prompt it was sent."""

    def __init__(self, rounds: list[dict[str, list[str]]]):
        self.rounds, self.prompts, self.calls = rounds, [], 0

    def generate(self, requests):
        script = self.rounds[self.calls]
        self.calls += 1
        self.prompts.append([r.prompt for r in requests])
        counters: dict[str, int] = {}
        out = []
        for r in requests:
            i = counters.get(r.label, 0)
            counters[r.label] = i + 1
            out.append(script[r.label][i])
        return out


def test_synthesize_filters_counts_reasons_feeds_them_back_and_stops_on_drift():
    texts, labels = flat()
    script = [
        {"flu": ["fever and cough today", "fever"], "eczema": ["itchy rash on the arms", TEXTS["eczema"][0]]},
        {
            "flu": ["chills and a cough", "cough and fever at night"],
            "eczema": ["red rash that itches", "dry skin on the elbows"],
        },
        {"flu": ["engine wheel brake engine", "brake wheel engine"], "eczema": ["wheel engine brake", "engine"]},
    ]
    generator = ScriptedGenerator(script)

    def labeler(batch):  # the teacher reads texts with "itch" as eczema
        return np.array([[0.1, 0.9] if "itch" in t or "rash" in t else [0.9, 0.1] for t in batch])

    out = synthesize(generator, ["flu", "eczema"], texts, labels, bag_embed, labeler=labeler,
                     monitor=DriftMonitor(bag_embed(texts), threshold=0.5),
                     config=SynthesisConfig(per_label=2, rounds=3, few_shot=1, progress=False))  # fmt: skip
    first = out.rounds[0]
    assert first.generated == 4 and first.kept == 2
    assert first.rejected == {"too short": 1, "duplicate or copy of a real text": 1}
    assert "were rejected as too short" in generator.prompts[1][0]  # the feedback reached the next prompts
    assert out.rounds[1].rejected == {"teacher disagrees": 1}  # "dry skin on the elbows": read as flu
    assert out.rounds[2].drifted and out.stopped.startswith("round 2")
    assert not any("engine" in t for t in out.texts)  # the drifted round's texts were dropped
    assert len(out.texts) == len(out.labels) == len(out.probabilities) == first.kept + out.rounds[1].kept


def test_teacher_generator_asks_each_prompt_once_through_the_store_and_llm_reviser_keeps_placeholders(tmp_path):
    def reply(prompt):
        return f"answer to {prompt.split()[-1]}", [], "stop"

    with TextServer(reply) as server:
        backend = OpenAICompatibleTeacher(server.url, "writer", max_retries=0)
        generator = TeacherGenerator(backend, store=str(tmp_path / "store"))
        requests = [Request("flu", f"write number {i}", seed=i) for i in range(3)]
        first = generator.generate(requests)
        again = generator.generate(requests)
        assert first == again == ["answer to 0", "answer to 1", "answer to 2"] and server.requests == 3

    class Rewriter:
        def __init__(self, text):
            self.text = text

        def answer(self, prompts):
            return [TeacherOutput(text=self.text) for _ in prompts]

    from suite.condense.synthetic import Rejection

    rejected = [Rejection("flu", "x", "too short")]
    good = "Write a {label} case, number {index}. {feedback}"
    assert LLMReviser(Rewriter(good)).revise("old {label} {index}", rejected) == good
    assert LLMReviser(Rewriter("no placeholders")).revise("old {label} {index}", rejected) == "old {label} {index}"
    assert (
        LLMReviser(Rewriter("{label} {index} {unknown}")).revise("old {label} {index}", rejected)
        == "old {label} {index}"
    )


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = sorted({w for group in TEXTS.values() for t in group for w in t.split()})
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[EOS]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]",
                                      eos_token="[EOS]", bos_token="[EOS]")  # fmt: skip
    torch.manual_seed(0)
    eos, pad = vocab["[EOS]"], vocab["[PAD]"]
    config = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=1, n_head=2, n_positions=32, bos_token_id=eos,
                        eos_token_id=eos, pad_token_id=pad)  # fmt: skip
    path = tmp_path_factory.mktemp("lm") / "gpt2"
    GPT2LMHeadModel(config).save_pretrained(path)
    wrapped.save_pretrained(path)
    return path


def test_soft_prompts_steer_a_frozen_lm_towards_each_label(tiny_lm, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from suite.condense.soft_prompt import SoftPromptGenerator, train_soft_prompts

    texts, labels = flat()
    losses = train_soft_prompts(str(tiny_lm), texts * 10, labels * 10, tmp_path / "prompts", num_virtual_tokens=4,
                                epochs=4, lr=0.1, seed=0, progress=False)  # fmt: skip
    assert set(losses) == {"flu", "eczema"}
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)

    def loss(adapter: str, label: str) -> float:
        base = AutoModelForCausalLM.from_pretrained(tiny_lm)
        model = PeftModel.from_pretrained(base, tmp_path / "prompts" / adapter).eval()
        batch = tokenizer([f"[EOS]{t}[EOS]" for t in TEXTS[label]], padding=True, return_tensors="pt")
        with torch.no_grad():
            return float(
                model(**batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)).loss
            )

    # adapters are saved in sorted label order: 0 = eczema, 1 = flu; each fits its own label's texts better
    assert loss("1", "flu") < loss("0", "flu") and loss("0", "eczema") < loss("1", "eczema")
    generator = SoftPromptGenerator(tmp_path / "prompts", max_new_tokens=8)
    out = generator.generate([Request("flu", "", seed=0), Request("eczema", "", seed=0)])
    assert len(out) == 2 and all(t and set(t.split()) <= set(tokenizer.get_vocab()) for t in out)
    assert out == generator.generate([Request("flu", "", seed=0), Request("eczema", "", seed=0)])  # seeded
    with pytest.raises(ConfigError, match="no soft prompt"):
        generator.generate([Request("asthma", "", 0)])


def test_distill_data_distill_on_a_labelled_table_writes_embeddings_with_a_held_out_check(tmp_path, capsys):
    import json

    from suite.cli import main
    from suite.condense.files import load_distilled, load_distilled_embeddings

    rng = random.Random(0)
    topics = {"flu": ["fever", "cough", "chills", "sore throat", "aching muscles"],
              "eczema": ["itchy rash", "dry skin", "red patches", "flaking", "cracked skin"]}  # fmt: skip
    table = tmp_path / "cases.jsonl"
    with open(table, "w") as handle:
        for i in range(80):
            label = ["flu", "eczema"][i % 2]
            words = rng.sample(topics[label], 2)
            handle.write(json.dumps({"note": f"for {i % 7 + 1} days i have had {words[0]} and {words[1]}",
                                     "dx": label}) + "\n")  # fmt: skip
    out = tmp_path / "distilled"
    args = ["data", "distill", "dm", "--table", str(table), "--column", "note", "--ipc", "2", "--iterations", "30"]
    assert main([*args, "--out", str(out)]) != 0 and "--label-column" in capsys.readouterr().err
    assert main([*args, "--label-column", "dx", "--out", str(out)]) == 0
    data, record = load_distilled_embeddings(out)
    assert data.vectors.shape == (4, 384) and data.labels.tolist() == [0, 0, 1, 1]
    assert record["classes"] == ["eczema", "flu"] and record["method"] == "dm" and len(record["source_sha256"]) == 64
    check = record["held_out_check"]
    assert 0 < check["rows"] < 80 and check["distilled"] > check["majority_class"] + 0.2
    with pytest.raises(ConfigError, match="not images"):
        load_distilled(out)
    (out / "embeddings.safetensors").write_bytes((out / "embeddings.safetensors").read_bytes()[:-4] + b"0000")
    with pytest.raises(ConfigError, match="sha256"):
        load_distilled_embeddings(out)
