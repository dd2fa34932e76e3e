"""The generative path end to end on tiny T5s: word-level KD (live teacher and stored top-k), sequence-level KD and
on-policy KD each leave the student closer to its teacher than the same student trained on the references alone."""

from __future__ import annotations

import math
import random

import pytest
import torch

from suite.generative import (
    OnPolicyMix,
    TextPair,
    attach_teacher_topk,
    collate_seq2seq,
    encode_seq2seq,
    generate,
    reference_perplexity,
    seq2seq_forward,
    stored_teacher_topk,
    teacher_sequences,
    teacher_topk,
    train_generator,
)
from suite.losses.divergence import TokenKDConfig, token_divergence
from suite.students import build_student
from suite.students.generative import SpecialTokens
from suite.students.text import build_vocab_tokenizer
from suite.trainer import TrainerConfig

WORDS = [
    "lung",
    "heart",
    "clear",
    "effusion",
    "normal",
    "small",
    "right",
    "left",
    "no",
    "acute",
    "base",
    "pleural",
    "size",
    "stable",
    "mild",
]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture(scope="module")
def setup():
    rng = random.Random(0)
    pairs = [TextPair(sentence(rng, 6), sentence(rng, 4)) for _ in range(48)]
    tokenizer = build_vocab_tokenizer([p.source for p in pairs] + [p.target for p in pairs], vocab_size=100)
    ids = SpecialTokens.of(tokenizer)
    kwargs = {"vocab_size": len(tokenizer), "pad_id": ids.pad, "start_id": ids.start, "end_id": ids.end,
              "size": "2m", "shape": "t5"}  # fmt: skip
    torch.manual_seed(0)
    teacher = build_student("seq2seq", **kwargs).eval()
    with torch.no_grad():  # a confident random teacher, far from what the references teach
        teacher.lm_head.weight.mul_(30.0)
    items = encode_seq2seq(tokenizer, pairs, max_source=16, max_target=8)
    return tokenizer, ids, kwargs, teacher, pairs, items


def config(tmp_path, name: str) -> TrainerConfig:
    return TrainerConfig(output_dir=str(tmp_path / name), epochs=6, batch_size=8, lr=3e-3, warmup_ratio=0.0,
                         log_every=1000, progress=False, tensorboard=False, seed=0)  # fmt: skip


def distance_to_teacher(student, teacher, items, pad_id) -> float:
    """Forward KL from the teacher to the student at every target position of ``items`` (teacher-forced)."""
    batch = collate_seq2seq(pad_id)(items)
    with torch.no_grad():
        s, t = seq2seq_forward(student.eval(), batch)["logits"], seq2seq_forward(teacher, batch)["logits"]
    return token_divergence(s, t, "fkl", mask=batch["labels"] != -100).item()


def fresh(kwargs):
    torch.manual_seed(1)
    return build_student("seq2seq", **kwargs)


def test_encoding_drops_the_tokenizers_start_token_from_targets_and_pads_labels_with_minus_100(setup):
    tokenizer, ids, _, _, pairs, items = setup
    assert items[0]["labels"][0] != ids.start and items[0]["labels"][-1] == ids.end
    batch = collate_seq2seq(ids.pad)(items[:4])
    labels = batch["inputs"]["labels"]
    for row, item in enumerate(items[:4]):
        assert labels[row, : len(item["labels"])].tolist() == item["labels"]
        assert (labels[row, len(item["labels"]) :] == -100).all()
    assert tokenizer.decode(items[0]["labels"], skip_special_tokens=True) == pairs[0].target


def test_word_level_kd_from_a_live_teacher_and_from_stored_top_k_moves_the_student_to_the_teacher(setup, tmp_path):
    _, ids, kwargs, teacher, _, items = setup
    train, held_out = items[:40], items[40:]
    references = train_generator(fresh(kwargs), train, config(tmp_path, "ce"), pad_id=ids.pad, terms={"task": 1.0})
    live = train_generator(fresh(kwargs), train, config(tmp_path, "kd"), pad_id=ids.pad, terms={"kd": 1.0},
                           teacher=teacher, kd=TokenKDConfig(divergence="fkl"))  # fmt: skip
    topk = stored_teacher_topk(teacher, "tiny-teacher", train, ids.pad, k=8, store_dir=tmp_path / "store")
    assert [t[0].shape for t in topk] == [t[0].shape for t in teacher_topk(teacher, train, ids.pad, k=8)]
    stored = train_generator(fresh(kwargs), attach_teacher_topk(train, topk), config(tmp_path, "topk"),
                             pad_id=ids.pad, terms={"kd": 1.0})  # fmt: skip
    baseline = distance_to_teacher(references, teacher, held_out, ids.pad)
    assert distance_to_teacher(live, teacher, held_out, ids.pad) < 0.5 * baseline
    assert distance_to_teacher(stored, teacher, held_out, ids.pad) < 0.5 * baseline


def test_stored_top_k_is_asked_once(setup, tmp_path):
    _, ids, _, teacher, _, items = setup
    first = stored_teacher_topk(teacher, "tiny-teacher", items[:5], ids.pad, k=4, store_dir=tmp_path / "s")

    class Broken(torch.nn.Module):
        def forward(self, **kwargs):
            raise AssertionError("the store should have answered")

    again = stored_teacher_topk(Broken(), "tiny-teacher", items[:5], ids.pad, k=4, store_dir=tmp_path / "s")
    for (a_ids, a_lp), (b_ids, b_lp) in zip(first, again, strict=True):
        assert torch.equal(a_ids, b_ids) and torch.equal(a_lp, b_lp)


def test_stored_top_k_keeps_the_teachers_ranking_in_six_bytes_an_entry(setup, tmp_path):
    _, ids, _, teacher, _, items = setup
    stored = stored_teacher_topk(teacher, "tiny-teacher", items[:5], ids.pad, k=4, store_dir=tmp_path / "s")
    live = teacher_topk(teacher, items[:5], ids.pad, k=4)
    for (s_ids, s_lp), (l_ids, l_lp) in zip(stored, live, strict=True):
        assert torch.equal(s_ids, l_ids) and torch.allclose(s_lp, l_lp, atol=2e-2, rtol=1e-3)
    shard = next((tmp_path / "s").rglob("*.safetensors"))
    from safetensors import safe_open

    with safe_open(shard, "pt") as f:
        names = f.keys()  # a safetensors handle is not iterable
        dtypes = {name.rsplit(".", 1)[-1]: f.get_tensor(name).dtype for name in names}
    assert dtypes == {"topk_ids": torch.int32, "topk_logprobs": torch.float16}


def test_reference_perplexity_is_the_exponential_of_the_mean_target_cross_entropy(setup):
    tokenizer, ids, _, teacher, pairs, items = setup
    batch = collate_seq2seq(ids.pad)(items[:10])
    with torch.no_grad():
        logits = seq2seq_forward(teacher, batch)["logits"]
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    got = reference_perplexity(teacher, tokenizer, pairs[:10], max_source=16, max_target=8, batch_size=3)
    assert math.log(got) == pytest.approx(ce.item(), rel=1e-5)  # a confident teacher: compare in log space
    uniform = reference_perplexity(fresh_uniform(teacher), tokenizer, pairs[:10], 16, 8)
    assert uniform == pytest.approx(teacher.config.vocab_size, rel=1e-3)  # a uniform model: perplexity = |V|


def fresh_uniform(model):
    import copy

    uniform = copy.deepcopy(model)
    with torch.no_grad():
        uniform.lm_head.weight.zero_()
    return uniform


def test_sequence_level_kd_trains_on_the_teachers_outputs_and_agrees_with_it_more(setup, tmp_path):
    tokenizer, ids, kwargs, teacher, pairs, items = setup
    teacher_pairs = teacher_sequences(teacher, tokenizer, pairs[:40], max_source=16, max_new_tokens=8, num_beams=2)
    assert [p.source for p in teacher_pairs] == [p.source for p in pairs[:40]]
    sequence_items = encode_seq2seq(tokenizer, teacher_pairs, 16, 8)
    sequence = train_generator(fresh(kwargs), sequence_items, config(tmp_path, "seq"), pad_id=ids.pad,
                               terms={"task": 1.0})  # fmt: skip
    references = train_generator(fresh(kwargs), items[:40], config(tmp_path, "ref"), pad_id=ids.pad,
                                 terms={"task": 1.0})  # fmt: skip
    sources = [p.source for p in pairs[40:]]
    wanted = generate(teacher, tokenizer, sources, 16, 8)

    def agreement(model) -> float:
        return sum(a == b for a, b in zip(generate(model, tokenizer, sources, 16, 8), wanted, strict=True)) / len(
            wanted
        )

    assert agreement(sequence) > agreement(references)


def test_on_policy_kd_rewrites_targets_with_student_samples_and_learns_from_the_teacher(setup, tmp_path):
    _, ids, kwargs, teacher, _, items = setup
    mix = OnPolicyMix(1.0, max_new_tokens=6, pad_id=ids.pad)
    batch = collate_seq2seq(ids.pad)(items[:4])
    rewritten = mix(fresh(kwargs), batch)
    assert mix.sampled_batches == 1 and rewritten["labels"].shape[1] <= 6
    assert torch.equal(rewritten["inputs"]["input_ids"], batch["inputs"]["input_ids"])
    assert OnPolicyMix(0.0, 6, ids.pad)(fresh(kwargs), batch) is batch
    references = train_generator(fresh(kwargs), items[:40], config(tmp_path, "ce2"), pad_id=ids.pad,
                                 terms={"task": 1.0})  # fmt: skip
    on_policy = train_generator(fresh(kwargs), items[:40], config(tmp_path, "gkd"), pad_id=ids.pad, terms={"kd": 1.0},
                                teacher=teacher, on_policy=0.5, max_new_tokens=8,
                                kd=TokenKDConfig(divergence="jsd", beta=0.5))  # fmt: skip
    held_out = items[40:]
    assert distance_to_teacher(on_policy, teacher, held_out, ids.pad) < distance_to_teacher(
        references, teacher, held_out, ids.pad
    )


def test_kd_without_any_teacher_or_on_policy_without_a_live_one_is_refused(setup, tmp_path):
    _, ids, kwargs, teacher, _, items = setup
    with pytest.raises(ValueError, match="live teacher or items with stored"):
        train_generator(fresh(kwargs), items, config(tmp_path, "x"), pad_id=ids.pad, terms={"kd": 1.0})
    with pytest.raises(ValueError, match="on-policy"):
        train_generator(
            fresh(kwargs), items, config(tmp_path, "y"), pad_id=ids.pad, terms={"task": 1.0}, on_policy=0.5
        )


# --- a teacher with a larger vocabulary: the student's is a pruned copy of it -------------------------------------


def test_a_pruned_vocabulary_tokenizes_corpus_text_exactly_as_the_teacher_and_maps_ids_back():
    from suite import hub
    from suite.students.generative import prune_vocabulary

    teacher_tokenizer = hub.load_tokenizer("minilm-l6")
    corpus = ["No acute cardiopulmonary abnormality.", "Small right pleural effusion with basilar atelectasis."]
    student_tokenizer, teacher_ids = prune_vocabulary(teacher_tokenizer, corpus)
    assert len(student_tokenizer) == len(teacher_ids) < 40
    for text in corpus:
        student = student_tokenizer(text)["input_ids"]
        assert [teacher_ids[i] for i in student] == teacher_tokenizer(text)["input_ids"]


def test_kd_through_a_vocabulary_map_reads_the_teacher_at_the_students_pieces(tmp_path):
    from suite import hub
    from suite.generative import VocabularyMap
    from suite.students.generative import prune_vocabulary

    teacher_tokenizer = hub.load_tokenizer("minilm-l6")
    rng = random.Random(0)
    pairs = [TextPair(sentence(rng, 6), sentence(rng, 4)) for _ in range(40)]
    texts = [p.source for p in pairs] + [p.target for p in pairs]
    student_tokenizer, teacher_ids = prune_vocabulary(teacher_tokenizer, texts)
    vocab = VocabularyMap(teacher_ids)
    ids = SpecialTokens.of(teacher_tokenizer)
    torch.manual_seed(0)
    teacher = build_student("seq2seq", vocab_size=len(teacher_tokenizer), pad_id=ids.pad, start_id=ids.start,
                            end_id=ids.end, size="2m").eval()  # fmt: skip
    with torch.no_grad():
        teacher.lm_head.weight.mul_(30.0)
    items = encode_seq2seq(student_tokenizer, pairs, 16, 8)
    batch = collate_seq2seq(0)(items[:4])
    teacher_batch = vocab.to_teacher(batch)  # the same texts in the teacher's own ids
    direct = collate_seq2seq(0)(encode_seq2seq(teacher_tokenizer, pairs[:4], 16, 8))
    assert torch.equal(teacher_batch["inputs"]["input_ids"], direct["inputs"]["input_ids"])
    assert torch.equal(teacher_batch["inputs"]["labels"], direct["inputs"]["labels"])
    with torch.no_grad():
        restricted = vocab.restrict(seq2seq_forward(teacher, teacher_batch)["logits"])
    with torch.no_grad():
        full = seq2seq_forward(teacher, teacher_batch)["logits"]
    # the teacher's logits at the student's pieces: its distribution renormalised over what the student can say
    assert torch.equal(restricted["logits"], full[..., torch.tensor(teacher_ids)])
    top = teacher_topk(teacher, items[:4], 0, k=5, vocab=vocab)
    assert all((i < len(teacher_ids)).all() for i, _ in top)
    s_ids = SpecialTokens.of(student_tokenizer)
    kwargs = {"vocab_size": len(student_tokenizer), "pad_id": s_ids.pad, "start_id": s_ids.start,
              "end_id": s_ids.end, "size": "2m", "shape": "t5"}  # fmt: skip
    references = train_generator(fresh(kwargs), items[:32], config(tmp_path, "ce3"), pad_id=0, terms={"task": 1.0})
    distilled = train_generator(fresh(kwargs), items[:32], config(tmp_path, "kd3"), pad_id=0, terms={"kd": 1.0},
                                teacher=teacher, vocab=vocab)  # fmt: skip

    def distance(student) -> float:
        held = collate_seq2seq(0)(items[32:])
        with torch.no_grad():
            s = seq2seq_forward(student.eval(), held)["logits"]
            t = vocab.restrict(seq2seq_forward(teacher, vocab.to_teacher(held))["logits"])["logits"]
        return token_divergence(s, t, "fkl", mask=held["labels"] != -100).item()

    assert distance(distilled) < distance(references)


def test_the_teacher_over_the_student_vocabulary_is_stored_once_and_equals_the_live_reading(tmp_path):
    from suite import hub
    from suite.generative import VocabularyMap, stored_teacher_student_logits
    from suite.students.generative import prune_vocabulary

    teacher_tokenizer = hub.load_tokenizer("minilm-l6")
    rng = random.Random(1)
    pairs = [TextPair(sentence(rng, 5), sentence(rng, 3)) for _ in range(6)]
    student_tokenizer, teacher_ids = prune_vocabulary(
        teacher_tokenizer, [t for p in pairs for t in (p.source, p.target)]
    )
    vocab = VocabularyMap(teacher_ids)
    ids = SpecialTokens.of(teacher_tokenizer)
    torch.manual_seed(0)
    teacher = build_student("seq2seq", vocab_size=len(teacher_tokenizer), pad_id=ids.pad, start_id=ids.start,
                            end_id=ids.end, size="2m").eval()  # fmt: skip
    items = encode_seq2seq(student_tokenizer, pairs, 16, 8)
    stored = stored_teacher_student_logits(teacher, "t", items, 0, vocab, tmp_path / "store")
    batch = collate_seq2seq(0)(items)
    with torch.no_grad():
        live = vocab.restrict(seq2seq_forward(teacher, vocab.to_teacher(batch))["logits"])["logits"]
    for row, (item, logits) in enumerate(zip(items, stored, strict=True)):
        assert logits.dtype == torch.float16 and logits.shape == (len(item["labels"]), len(teacher_ids))
        torch.testing.assert_close(logits.float(), live[row, : len(item["labels"])], rtol=1e-3, atol=1e-2)
    again = stored_teacher_student_logits(None, "t", items, 0, vocab, tmp_path / "store")  # the store answers
    assert all(torch.equal(a, b) for a, b in zip(stored, again, strict=True))
    batch = collate_seq2seq(0)(gen_attach(items, stored))
    assert batch["teacher"]["logits"].shape == (*batch["labels"].shape, len(teacher_ids))


def gen_attach(items, logits):
    from suite.generative import attach_teacher_logits

    return attach_teacher_logits(items, logits)


def test_a_decoder_only_student_learns_from_a_decoder_only_teacher(setup, tmp_path):
    """The same word-level KD on GPT-2-shaped models: prompt + target in one sequence, labels pre-shifted."""
    from suite.generative import causal_forward, encode_causal

    tokenizer, ids, kwargs, _, pairs, _ = setup
    causal = {**kwargs, "shape": "gpt2"}
    torch.manual_seed(0)
    teacher = build_student("causal-lm", **causal).eval()
    with torch.no_grad():
        teacher.lm_head.weight.mul_(30.0)  # tied to the input embeddings: a confident teacher all the same
    items = encode_causal(tokenizer, pairs, max_source=16, max_target=8, end_id=ids.end)
    first = items[0]
    prompt = len(tokenizer(pairs[0].source)["input_ids"])
    assert first["input_ids"][:prompt] == tokenizer(pairs[0].source)["input_ids"]
    assert first["labels"][: prompt - 1] == [-100] * (prompt - 1) and first["labels"][-1] == ids.end
    assert first["labels"][prompt - 1 : -1] == first["input_ids"][prompt:]  # label at t = the token at t + 1

    def causal_student():
        torch.manual_seed(1)
        return build_student("causal-lm", **causal)

    train, held_out = items[:40], items[40:]
    ce = train_generator(causal_student(), train, config(tmp_path, "ce"), pad_id=ids.pad, terms={"task": 1.0})
    kd = train_generator(causal_student(), train, config(tmp_path, "kd"), pad_id=ids.pad, terms={"kd": 1.0},
                         teacher=teacher, kd=TokenKDConfig(divergence="fkl"))  # fmt: skip

    def distance(student) -> float:
        batch = collate_seq2seq(ids.pad)(held_out)
        with torch.no_grad():
            s, t = causal_forward(student.eval(), batch)["logits"], causal_forward(teacher, batch)["logits"]
        return token_divergence(s, t, "fkl", mask=batch["labels"] != -100).item()

    assert distance(kd) < 0.5 * distance(ce)
    outputs = generate(kd, tokenizer, [p.source for p in pairs[:3]], max_source=16, max_new_tokens=6)
    assert len(outputs) == 3 and not any(pairs[i].source in outputs[i] for i in range(3))  # the prompt is cut off
    assert reference_perplexity(kd, tokenizer, pairs[40:], 16, 8) > 1.0
    with pytest.raises(ValueError, match="encoder-decoder students only"):
        train_generator(causal_student(), train, config(tmp_path, "op"), pad_id=ids.pad, terms={"kd": 1.0},
                        teacher=teacher, on_policy=0.5)  # fmt: skip
