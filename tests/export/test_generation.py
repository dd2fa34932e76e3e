"""Generation students: encoder + decoder-with-past (T5) and decoder-with-past (GPT-2) exports decode, in numpy
and onnxruntime, to exactly the tokens (and beam scores) of transformers' generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

from suite.export import causal_lm_spec, export_student, load_exported, seq2seq_spec
from suite.export.runtime import ExportedCausalLM, ExportedSeq2Seq
from tests.export.tiny import CORPUS

NEW_TOKENS = 10


def random_prompts(lengths: list[int], seed: int, low: int, high: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(low, high, (n,), generator=generator).tolist() for n in lengths]


def padded(prompts: list[list[int]], pad: int, left: bool) -> dict[str, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        span = slice(width - len(prompt), width) if left else slice(0, len(prompt))
        ids[row, span], mask[row, span] = torch.tensor(prompt), 1
    return {"input_ids": ids, "attention_mask": mask}


def until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.fixture(scope="module")
def t5(tokenizer):
    """A T5 over the test tokenizer's vocabulary; initializer_factor 3 makes random outputs depend on the input."""
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=tokenizer.sep_token_id,
        initializer_factor=3.0,
    )
    return T5ForConditionalGeneration(config).eval()


@pytest.fixture(scope="module")
def t5_export(t5, tokenizer, tmp_path_factory):
    high = len(tokenizer)
    prompt = padded(random_prompts([5, 4], 1, 5, high), 0, left=False)
    heldout = [padded(random_prompts(lengths, seed, 5, high), 0, left=False) for seed, lengths in
               enumerate([[3, 7, 6], [8], [2, 9, 4, 5]])]  # fmt: skip
    # Large random weights give keys/values of magnitude ~100, so float32 round-off reaches ~1e-4 absolute.
    spec = seq2seq_spec(t5, tolerance=1e-3)
    out = export_student(t5, spec, prompt, heldout, tmp_path_factory.mktemp("t5") / "t5", tokenizer=tokenizer)
    return load_exported(out), out


@pytest.fixture(scope="module")
def gpt2():
    """A GPT-2 whose EOS (token 2) is frequent, so finished rows and finished beams are exercised."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=64, n_positions=64, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2,
        bos_token_id=2, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def gpt2_export(gpt2, tmp_path_factory):
    prompt = padded(random_prompts([5, 4], 1, 3, 64), 0, left=True)
    heldout = [padded(random_prompts(lengths, seed, 3, 64), 0, left=True) for seed, lengths in
               enumerate([[3, 7, 6], [8], [2, 9, 4, 5]])]  # fmt: skip
    out = export_student(gpt2, causal_lm_spec(gpt2), prompt, heldout, tmp_path_factory.mktemp("gpt2") / "gpt2")
    return load_exported(out), out


def test_seq2seq_directory_holds_encoder_decoder_and_cache_geometry(t5, t5_export):
    runtime, out = t5_export
    assert isinstance(runtime, ExportedSeq2Seq)
    spec = json.loads((out / "spec.json").read_text())
    generation = spec["generation"]
    assert spec["family"] == "seq2seq" and {"encoder.onnx", "decoder.onnx"} <= set(spec["files"])
    assert (generation["num_layers"], generation["num_heads"], generation["head_dim"]) == (2, 4, 8)
    assert generation["decoder_start_token_id"] == 0 and generation["eos_token_id"] == [t5.config.eos_token_id]
    decoder_inputs = {i["name"]: i["shape"] for i in generation["sessions"]["decoder.onnx"]["inputs"]}
    assert decoder_inputs["past_key_values.1.value"] == ["batch", 4, "past_sequence", 8]
    assert [i["name"] for i in spec["inputs"]] == ["input_ids", "attention_mask"]  # the encoder's
    assert spec["parity"]["fp32"]["max_abs_diff"] <= 1e-3 and spec["parity"]["fp32"]["argmax_agreement"] == 1.0


def test_seq2seq_greedy_matches_transformers_generate(t5, t5_export, tokenizer):
    runtime, _ = t5_export
    prompts = random_prompts([6, 3, 9, 1], 7, 5, len(tokenizer))
    with torch.no_grad():
        expected = t5.generate(**padded(prompts, 0, left=False), max_new_tokens=NEW_TOKENS, do_sample=False)
    np.testing.assert_array_equal(runtime.greedy(prompts, NEW_TOKENS), expected[:, 1:].numpy())
    assert len({tuple(row) for row in expected[:, 1:].tolist()}) == len(prompts)  # the outputs depend on the input


def test_seq2seq_threads_reach_the_encoder_and_the_decoder(t5_export, tokenizer):
    runtime, out = t5_export
    one = load_exported(out, threads=1)
    assert [s.get_session_options().intra_op_num_threads for s in (one.encoder, one.decoder)] == [1, 1]
    prompts = random_prompts([4, 2], 3, 5, len(tokenizer))
    np.testing.assert_array_equal(one.greedy(prompts, NEW_TOKENS), runtime.greedy(prompts, NEW_TOKENS))


def _beams(model, batch: dict[str, torch.Tensor], num_beams: int, skip: int):
    with torch.no_grad():
        out = model.generate(
            **batch, max_new_tokens=NEW_TOKENS, do_sample=False, num_beams=num_beams,
            num_return_sequences=num_beams, output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
    eos = model.generation_config.eos_token_id
    sequences = [until_eos(s, eos) for s in out.sequences[:, skip:].tolist()]
    return sequences, out.sequences_scores.numpy()


def test_seq2seq_beam_search_matches_transformers(t5, t5_export, tokenizer):
    runtime, _ = t5_export
    prompts, beams = random_prompts([6, 3, 9], 7, 5, len(tokenizer)), 3
    sequences, scores = _beams(t5, padded(prompts, 0, left=False), beams, skip=1)
    results = runtime.beam_search(prompts, NEW_TOKENS, num_beams=beams)
    assert [len(hyps) for hyps in results] == [beams] * len(prompts)
    assert [h.tokens for hyps in results for h in hyps] == sequences
    # |error of a log-softmax| <= 2 max|logit error|, and scores are per-token means: 2 x the decoder tolerance.
    np.testing.assert_allclose([h.score for hyps in results for h in hyps], scores, atol=2e-3)
    for hyps in results:  # ranked best first
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_causal_lm_greedy_matches_generate_on_left_padded_prompts(gpt2, gpt2_export):
    runtime, _ = gpt2_export
    assert isinstance(runtime, ExportedCausalLM)
    prompts = random_prompts([6, 3, 9], 7, 3, 64)
    batch = padded(prompts, 0, left=True)
    with torch.no_grad():
        expected = gpt2.generate(**batch, max_new_tokens=NEW_TOKENS, do_sample=False)
    expected = expected[:, batch["input_ids"].shape[1] :].numpy()
    np.testing.assert_array_equal(runtime.greedy(prompts, NEW_TOKENS), expected)
    assert (expected == 2).any()  # some row finished with EOS and was filled with the pad token after it


def test_causal_lm_beam_search_matches_transformers(gpt2, gpt2_export):
    runtime, _ = gpt2_export
    prompts, beams = random_prompts([6, 3, 9], 7, 3, 64), 3
    batch = padded(prompts, 0, left=True)
    sequences, scores = _beams(gpt2, batch, beams, skip=batch["input_ids"].shape[1])
    results = runtime.beam_search(prompts, NEW_TOKENS, num_beams=beams)
    assert [h.tokens for hyps in results for h in hyps] == sequences
    assert any(h.tokens[-1] == 2 for hyps in results for h in hyps)  # a hypothesis ended with EOS
    np.testing.assert_allclose([h.score for hyps in results for h in hyps], scores, atol=2e-4)


@pytest.mark.parametrize("family", ["seq2seq", "causal-lm"])
def test_a_single_beam_is_greedy_decoding(family, t5_export, gpt2_export):
    runtime, _ = t5_export if family == "seq2seq" else gpt2_export
    prompts = random_prompts([6, 3, 9], 11, 5, 64)
    eos = runtime.eos.tolist()
    greedy = [until_eos(row, eos[0]) for row in runtime.greedy(prompts, NEW_TOKENS).tolist()]
    best = [hyps[0].tokens for hyps in runtime.beam_search(prompts, NEW_TOKENS, num_beams=1)]
    # With EOS a single beam may still prefer a longer length-normalised hypothesis; without it they coincide.
    compared = [(g, b) for g, b in zip(greedy, best, strict=True) if g[-1] not in eos]
    assert compared and all(g == b for g, b in compared)
    assert runtime.generate(prompts, NEW_TOKENS) == greedy


def test_generate_text_tokenizes_generates_and_decodes(t5, t5_export, tokenizer):
    runtime, out = t5_export
    texts = CORPUS[:2]
    with torch.no_grad():
        expected = t5.generate(
            **tokenizer(texts, padding=True, return_tensors="pt"), max_new_tokens=6, do_sample=False
        )
    saved = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    rows = [until_eos(row, tokenizer.sep_token_id) for row in expected[:, 1:].tolist()]
    assert runtime.generate_text(texts, max_new_tokens=6) == saved.decode_batch(rows, skip_special_tokens=True)


def test_the_saved_tokenizer_truncates_at_the_specs_max_length_whatever_it_was_last_called_with(
    t5, tokenizer, tmp_path
):
    import copy

    last_called = copy.deepcopy(tokenizer)
    last_called(CORPUS[:1], truncation=True, max_length=4, padding="max_length")  # a fast tokenizer keeps this
    prompt = padded(random_prompts([5, 4], 1, 5, len(tokenizer)), 0, left=False)
    spec = seq2seq_spec(t5, max_length=12, tolerance=1e-3)
    heldout = padded(random_prompts([3, 7, 6], 2, 5, len(tokenizer)), 0, left=False)
    out = export_student(t5, spec, prompt, [heldout], tmp_path / "t5", tokenizer=last_called)
    saved = json.loads((out / "tokenizer" / "tokenizer.json").read_text())
    assert saved["truncation"]["max_length"] == 12 and saved["padding"] is None
    long_text = " ".join(CORPUS)
    assert len(tokenizer(long_text)["input_ids"]) > 12
    runtime = load_exported(out)
    assert len(runtime._tokenizer.encode(long_text).ids) == 12  # as the student saw it in training
    assert len(runtime.generate_text([long_text], max_new_tokens=3)) == 1
