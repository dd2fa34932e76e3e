"""Latency of generation students: one call = one whole output (a summary) for one prompt at batch 1.

onnxruntime runs the exported encoder + decoder-with-past through :mod:`suite.export.runtime`'s decoding loop;
eager PyTorch runs ``generate`` on the same weights under ``torch.inference_mode``, with the same prompt, greedy
(or the same beam width) and the same ``max_new_tokens``. Both are timed call by call in turn
(:func:`~suite.bench.latency.time_interleaved`). Each row adds ``tokens_per_call`` (mean generated tokens) and
``ms_per_token`` (mean ms per call / mean tokens per call), so runtimes that stop at different lengths stay
comparable.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from suite.bench.latency import Timed, _rss, physical_cores, tokenizer_vocab_size

GENERATION_FAMILIES = ("seq2seq", "causal-lm")
SYNTHETIC_PROMPTS = 8


def prompts_for(export_dir: Path, spec: Mapping[str, Any], data: Path | None, seq_len: int | None) -> list[list[int]]:
    """Token-id prompts: the ``text`` of the first 16 rows of ``data`` (JSONL) through the exported tokenizer, or
    synthetic prompts of ``seq_len`` tokens (default 64) inside the vocabulary."""
    if data is not None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(export_dir / "tokenizer" / "tokenizer.json"))
        with open(data) as handle:
            texts = [json.loads(line)["text"] for line in itertools.islice(handle, 16)]
        return [e.ids for e in tokenizer.encode_batch(texts)]
    vocab = tokenizer_vocab_size(export_dir) or 100
    rng = np.random.default_rng(0)
    length = seq_len or 64
    return [rng.integers(5, max(6, vocab), size=length).tolist() for _ in range(SYNTHETIC_PROMPTS)]


def _timed(call_one: Any, prompts: list[list[int]], row: dict[str, Any], extra: dict[str, Any]) -> Timed:
    position, generated = itertools.cycle(range(len(prompts))), []

    def call() -> None:
        generated.append(call_one(prompts[next(position)]))

    def after(peak: int | None) -> dict[str, Any]:
        return {"peak_rss_bytes": peak, "tokens_per_call": float(np.mean(generated)), **extra}

    return Timed(call, lambda: None, _rss, row, after, inputs=len(prompts))


def generation_timed(
    export_dir: Path, spec: Mapping[str, Any], prompts: list[list[int]], max_new_tokens: int, num_beams: int,
    torch_eager: bool, threads: int | None = None,
) -> list[tuple[dict[str, Any], Timed]]:  # fmt: skip
    """onnxruntime (and eager PyTorch when the export holds its weights) generating for ``prompts`` in turn."""
    from suite.export.runtime import load_exported

    threads = threads or physical_cores()
    model = load_exported(export_dir, providers=["CPUExecutionProvider"])
    median = int(np.median([len(p) for p in prompts]))
    row = {"provider": "cpu", "batch_size": 1, "seq_len": median, "inputs": "generate", "intra_op_threads": threads,
           "max_new_tokens": max_new_tokens, "num_beams": num_beams}  # fmt: skip
    out = [({"model": export_dir.name, "variant": "fp32"}, _timed(
        lambda p: len(model.generate([p], max_new_tokens, num_beams)[0]), prompts,
        {**row, "runtime": "onnxruntime", "available": True}, {},
    ))]  # fmt: skip
    if torch_eager and spec.get("torch"):
        out.append(({"model": export_dir.name, "variant": "eager"}, _torch_generation(export_dir, prompts, row)))
    return out


def _torch_generation(export_dir: Path, prompts: list[list[int]], row: dict[str, Any]) -> Timed:
    import torch

    from suite.export.package import load_torch_student

    module = load_torch_student(export_dir)
    encoder_decoder = bool(module.config.is_encoder_decoder)

    def call_one(prompt: list[int]) -> int:
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = module.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=row["max_new_tokens"], num_beams=row["num_beams"])  # fmt: skip
        # seq2seq outputs start with the decoder start token; causal outputs repeat the prompt
        return int(out.shape[1] - (1 if encoder_decoder else len(prompt)))

    return _timed(call_one, prompts, {**row, "runtime": "torch", "provider": "torch-cpu"}, {})


def add_per_token(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if r.get("tokens_per_call"):
            r["ms_per_token"] = r["mean_ms"] / r["tokens_per_call"]
