"""Torch-free inference on an exported student directory: numpy, onnxruntime, tokenizers and the standard library.

``load_exported(dir)`` reads spec.json, checks the sha256 of every file it loads against ``spec["files"]`` and
returns the runtime for the family:

- :class:`ExportedTextClassifier` - ``predict_proba(texts, text_pairs=None)`` with the saved ``tokenizer.json``
  (padding to the longest text of the batch, truncation to ``max_length``, as the HF tokenizer does);
- :class:`ExportedVision` - ``predict_proba(pixel_values)`` on float32 (B, C, H, W) arrays;
- :class:`ExportedSeq2Seq` / :class:`ExportedCausalLM` - greedy decoding and beam search over the decoder with past.

Decoding follows transformers' ``generate`` (v5) step for step, so a correct export yields the same tokens:
greedy fills finished rows with the pad token; beam search keeps ``2 * num_beams`` candidates per step, scores a
finished hypothesis as ``sum log p / generated_length ** length_penalty`` and stops when no running beam can beat
the worst finished one (``early_stopping=False``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from suite.checksum import sha256_file
from suite.export.errors import ExportIntegrityError

Arrays = dict[str, np.ndarray]
VARIANT_SUFFIX = {"fp32": "", "int8": ".int8", "fp16": ".fp16"}  # = spec.VARIANT_FILES; spec imports yaml
_NEG = np.float32(-1.0e9)  # transformers' "impossible" score


def select_providers(providers: Sequence[str] | None = None) -> list[str]:
    """The requested execution providers that this onnxruntime build has (CPU when none of them is)."""
    available = ort.get_available_providers()
    return [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]


def read_spec(export_dir: str | Path) -> dict[str, Any]:
    path = Path(export_dir) / "spec.json"
    if not path.is_file():
        raise ExportIntegrityError(f"{export_dir}: no spec.json; not an exported student directory")
    return json.loads(path.read_text())


def verified(export_dir: str | Path, spec: dict[str, Any], name: str) -> Path:
    """``export_dir/name`` after checking it against the sha256 recorded in spec.json."""
    path = Path(export_dir) / name
    expected = spec["files"].get(name)
    if expected is None:
        raise ExportIntegrityError(f"{path}: not listed in spec.json 'files'; refusing to load an unrecorded file")
    if not path.is_file():
        raise ExportIntegrityError(f"{path}: missing (spec.json lists it)")
    actual = sha256_file(path)
    if actual != expected:
        raise ExportIntegrityError(
            f"{path}: sha256 {actual[:12]}... does not match spec.json ({expected[:12]}...); the file was modified "
            "or corrupted, re-export it"
        )
    return path


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class _Exported:
    """Shared loading: spec.json, providers, verified sessions."""

    def __init__(
        self,
        export_dir: str | Path,
        spec: dict[str, Any],
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None (onnxruntime's default), got {threads!r}")
        self.dir, self.spec = Path(export_dir), spec
        self.providers = select_providers(providers)
        self.threads = threads

    @property
    def labels(self) -> list[str] | None:
        return self.spec["labels"]

    def session(self, name: str) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # fp16 graphs log one warning per node left to fp32; errors still raise
        if self.threads is not None:  # a sub-millisecond student often runs faster on one thread than on all cores
            options.intra_op_num_threads = self.threads
        return ort.InferenceSession(str(verified(self.dir, self.spec, name)), options, providers=self.providers)

    def tokenizer(self, required: bool) -> Any:
        """The saved ``tokenizer/tokenizer.json`` (verified), truncating at the spec's max_length (the inputs the
        student was trained on, whatever the file says), or None when absent and not required."""
        from tokenizers import Tokenizer

        if "tokenizer/tokenizer.json" not in self.spec["files"]:
            if required:
                raise ExportIntegrityError(f"{self.dir}: no tokenizer/tokenizer.json; re-export with tokenizer=...")
            return None
        tokenizer = Tokenizer.from_file(str(verified(self.dir, self.spec, "tokenizer/tokenizer.json")))
        if self.spec["max_length"]:
            tokenizer.enable_truncation(max_length=self.spec["max_length"])
        return tokenizer

    def _token_config(self) -> dict[str, Any]:
        path = self.dir / "tokenizer" / "tokenizer_config.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def _token_text(value: Any) -> str | None:
    return value["content"] if isinstance(value, dict) else value


class _ExportedClassifier(_Exported):
    """One ``model[.variant].onnx`` session."""

    def __init__(
        self,
        export_dir: str | Path,
        spec: dict[str, Any],
        providers: Sequence[str] | None = None,
        variant: str = "fp32",
        threads: int | None = None,
    ):
        super().__init__(export_dir, spec, providers, threads)
        self.model = self.session(f"model{VARIANT_SUFFIX[variant]}.onnx")


class ExportedTextClassifier(_ExportedClassifier):
    """A text classifier: raw strings in, class probabilities out."""

    def __init__(self, *args: Any, **kwargs: Any):  # _ExportedClassifier's arguments; adds the tokenizer
        super().__init__(*args, **kwargs)
        self.input_names = [entry["name"] for entry in self.spec["inputs"]]
        self._tokenizer = self.tokenizer(required=True)
        pad_token = _token_text(self._token_config().get("pad_token"))
        pad_id = None if pad_token is None else self._tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ExportIntegrityError(f"{self.dir}: tokenizer has no pad token; batches cannot be padded")
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)

    def encode(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> Arrays:
        items = list(texts) if text_pairs is None else list(zip(texts, text_pairs, strict=True))
        encodings = self._tokenizer.encode_batch(items)
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {name: arrays[name] for name in self.input_names}

    def logits(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> np.ndarray:
        return self.model.run(["logits"], self.encode(texts, text_pairs))[0]

    def predict_proba(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> np.ndarray:
        """(N, C) class probabilities, softmax of the logits."""
        return softmax(self.logits(texts, text_pairs))

    def predict(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> list[str]:
        return [self.labels[i] for i in self.logits(texts, text_pairs).argmax(-1)]


class ExportedVision(_ExportedClassifier):
    """An image classifier on preprocessed float32 (B, C, H, W) arrays."""

    def logits(self, pixel_values: np.ndarray) -> np.ndarray:
        return self.model.run(["logits"], {"pixel_values": np.asarray(pixel_values, dtype=np.float32)})[0]

    def predict_proba(self, pixel_values: np.ndarray) -> np.ndarray:
        return softmax(self.logits(pixel_values))

    def predict(self, pixel_values: np.ndarray) -> list[str] | list[int]:
        indices = self.logits(pixel_values).argmax(-1).tolist()
        return indices if self.labels is None else [self.labels[i] for i in indices]


@dataclass
class Hypothesis:
    """One beam-search result: the generated tokens (EOS included when produced) and the length-normalised score."""

    tokens: list[int]
    score: float


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries per row, best first. (B, N) -> (B, k)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class _Generator(_Exported):
    """Greedy decoding and beam search over ``_start`` (prompt -> last logits, state) and ``_step`` (tokens ->
    last logits, state). State arrays are row-aligned, so reordering beams is one ``take`` per array."""

    def __init__(self, *args: Any, **kwargs: Any):  # _Exported's arguments
        super().__init__(*args, **kwargs)
        self.generation = self.spec["generation"]
        self.decoder = self.session(self.generation["decoder"])
        self.eos = np.array(self.generation["eos_token_id"], dtype=np.int64)
        self.pad_token_id = int(self.generation["pad_token_id"])
        self._tokenizer = self.tokenizer(required=False)

    def _empty_past(self, rows: int) -> Arrays:
        g = self.generation
        shape = (rows, g["num_heads"], 0, g["head_dim"])
        return {name: np.zeros(shape, dtype=np.float32) for name in g["past_inputs"]}

    def _run_decoder(self, feeds: Arrays, state: Arrays) -> tuple[np.ndarray, Arrays]:
        names = ["logits", *self.generation["present_outputs"]]
        outputs = self.decoder.run(names, feeds)
        past = dict(zip(self.generation["past_inputs"], outputs[1:], strict=True))
        return outputs[0][:, -1], {**state, **past}

    def _pad(self, prompts: Sequence[Sequence[int]], left: bool) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(p) for p in prompts)
        ids = np.full((len(prompts), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(prompts), width), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            span = slice(width - len(prompt), width) if left else slice(0, len(prompt))
            ids[row, span], mask[row, span] = prompt, 1
        return ids, mask

    def _start(self, prompts: Sequence[Sequence[int]], repeat: int) -> tuple[np.ndarray, Arrays]:
        raise NotImplementedError

    def _step(self, tokens: np.ndarray, state: Arrays) -> tuple[np.ndarray, Arrays]:
        raise NotImplementedError

    def greedy(self, prompts: Sequence[Sequence[int]], max_new_tokens: int = 32) -> np.ndarray:
        """(B, n<=max_new_tokens) new tokens per prompt; rows that produced EOS are filled with the pad token."""
        logits, state = self._start(prompts, repeat=1)
        unfinished = np.ones(len(prompts), dtype=bool)
        out = []
        for step in range(max_new_tokens):
            tokens = np.where(unfinished, logits.argmax(-1), self.pad_token_id)
            out.append(tokens)
            unfinished &= ~np.isin(tokens, self.eos)
            if not unfinished.any() or step == max_new_tokens - 1:
                break
            logits, state = self._step(tokens, state)
        return np.stack(out, axis=1)

    def beam_search(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int = 32,
        num_beams: int = 4,
        length_penalty: float = 1.0,
    ) -> list[list[Hypothesis]]:
        """The ``num_beams`` best hypotheses per prompt, best first (transformers' beam search, see module doc)."""
        batch, beams = len(prompts), num_beams
        logits, state = self._start(prompts, repeat=beams)
        keep = max(2, 1 + len(self.eos)) * beams  # enough candidates that `beams` of them can still run
        running = np.zeros((batch, beams, 0), dtype=np.int64)
        running_scores = np.zeros((batch, beams), dtype=np.float32)
        running_scores[:, 1:] = _NEG  # all beams start identical: only the first may expand at step one
        finished: list[list[tuple[float, list[int]]]] = [[(float(_NEG), [])] * beams for _ in range(batch)]
        improvable = np.ones(batch, dtype=bool)
        for step in range(max_new_tokens):
            length = step + 1  # generated tokens, this one included
            scores = (log_softmax(logits).reshape(batch, beams, -1) + running_scores[:, :, None]).reshape(batch, -1)
            top = _topk(scores, keep)
            top_scores = np.take_along_axis(scores, top, axis=1)
            source, tokens = np.divmod(top, logits.shape[-1])
            candidates = np.concatenate(
                [np.take_along_axis(running, source[:, :, None], axis=1), tokens[..., None]], 2
            )
            done = np.isin(tokens, self.eos) | (length == max_new_tokens)
            self._collect(finished, candidates, top_scores / length**length_penalty, done, improvable, beams)
            alive = _topk(top_scores + done * _NEG, beams)
            running = np.take_along_axis(candidates, alive[:, :, None], axis=1)
            running_scores = np.take_along_axis(top_scores + done * _NEG, alive, axis=1)
            best_possible = running_scores[:, 0] / length**length_penalty
            worst_finished = np.array([min(score for score, _ in hyps) for hyps in finished], dtype=np.float32)
            improvable &= best_possible > worst_finished
            if not improvable.any() or done.all():
                break
            rows = (np.arange(batch)[:, None] * beams + np.take_along_axis(source, alive, axis=1)).ravel()
            state = {name: array[rows] for name, array in state.items()}
            logits, state = self._step(running[:, :, -1].ravel(), state)
        return [[Hypothesis(tokens, score) for score, tokens in hyps if tokens] for hyps in finished]

    @staticmethod
    def _collect(
        finished: list[list[tuple[float, list[int]]]],
        candidates: np.ndarray,
        scores: np.ndarray,
        done: np.ndarray,
        improvable: np.ndarray,
        beams: int,
    ) -> None:
        """Merge the candidates that finished among the top ``beams`` into each prompt's ``beams`` best, unless the
        prompt can no longer improve. candidates (B, K', T), scores/done (B, K'), improvable (B,)."""
        for b, hyps in enumerate(finished):
            if not improvable[b]:
                continue
            new = [(float(scores[b, j]), candidates[b, j].tolist()) for j in range(beams) if done[b, j]]
            hyps[:] = sorted(hyps + new, key=lambda h: -h[0])[:beams]

    def generate(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int = 32, num_beams: int = 1
    ) -> list[list[int]]:
        """The best continuation of each prompt (token ids, EOS kept when produced, padding dropped)."""
        if num_beams == 1:
            rows = self.greedy(prompts, max_new_tokens).tolist()
            return [_until_eos(row, self.eos) for row in rows]
        return [hyps[0].tokens for hyps in self.beam_search(prompts, max_new_tokens, num_beams)]

    def generate_text(self, texts: Sequence[str], max_new_tokens: int = 32, num_beams: int = 1,
                      text_pairs: Sequence[str] | None = None) -> list[str]:  # fmt: skip
        """Tokenise with the saved tokenizer (``text_pairs``: as pairs, like a cross-encoder's input), generate,
        decode without special tokens."""
        if self._tokenizer is None:
            raise ExportIntegrityError(f"{self.dir}: no tokenizer/tokenizer.json; pass token ids to generate()")
        items = list(texts) if text_pairs is None else list(zip(texts, text_pairs, strict=True))
        prompts = [e.ids for e in self._tokenizer.encode_batch(items)]
        outputs = self.generate(prompts, max_new_tokens, num_beams)
        return self._tokenizer.decode_batch(outputs, skip_special_tokens=True)


def _until_eos(tokens: list[int], eos: np.ndarray) -> list[int]:
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[: i + 1]
    return tokens


class ExportedCausalLM(_Generator):
    """A decoder-only LM: prompts are left-padded, positions come from the attention mask inside the graph."""

    def _start(self, prompts: Sequence[Sequence[int]], repeat: int) -> tuple[np.ndarray, Arrays]:
        ids, mask = self._pad(prompts, left=True)
        ids, mask = np.repeat(ids, repeat, axis=0), np.repeat(mask, repeat, axis=0)
        state = {"attention_mask": mask, **self._empty_past(len(ids))}
        return self._run_decoder({"input_ids": ids, **state}, state)

    def _step(self, tokens: np.ndarray, state: Arrays) -> tuple[np.ndarray, Arrays]:
        mask = np.concatenate([state["attention_mask"], np.ones((len(tokens), 1), dtype=np.int64)], axis=1)
        state = {**state, "attention_mask": mask}
        return self._run_decoder({"input_ids": tokens[:, None].astype(np.int64), **state}, state)


class ExportedSeq2Seq(_Generator):
    """An encoder-decoder: the encoder runs once per prompt, the decoder once per generated token."""

    def __init__(self, *args: Any, **kwargs: Any):  # _Generator's arguments; adds the encoder's session
        super().__init__(*args, **kwargs)
        self.encoder = self.session(self.generation["encoder"])

    def _start(self, prompts: Sequence[Sequence[int]], repeat: int) -> tuple[np.ndarray, Arrays]:
        ids, mask = self._pad(prompts, left=False)
        (hidden,) = self.encoder.run(["encoder_hidden_states"], {"input_ids": ids, "attention_mask": mask})
        rows = len(ids) * repeat
        state = {"encoder_attention_mask": np.repeat(mask, repeat, axis=0)}
        state |= {"encoder_hidden_states": np.repeat(hidden, repeat, axis=0), **self._empty_past(rows)}
        return self._step(np.full(rows, self.generation["decoder_start_token_id"], dtype=np.int64), state)

    def _step(self, tokens: np.ndarray, state: Arrays) -> tuple[np.ndarray, Arrays]:
        return self._run_decoder({"decoder_input_ids": tokens[:, None].astype(np.int64), **state}, state)


def load_exported(
    export_dir: str | Path,
    providers: Sequence[str] | None = None,
    variant: str = "fp32",
    threads: int | None = None,
) -> ExportedTextClassifier | ExportedVision | ExportedSeq2Seq | ExportedCausalLM:
    """Load an exported student directory for inference (sha256-verified). ``variant``: fp32, int8 or fp16
    (classifiers); ``providers``: onnxruntime execution providers, those not available here are dropped;
    ``threads``: onnxruntime's intra-op threads per session (None: its default, one per physical core). A tiny
    student at batch 1 is often fastest on 1 (``distill bench --threads 1`` measures it)."""
    spec = read_spec(export_dir)
    family = spec["family"]
    if family in ("seq2seq", "causal-lm"):
        if variant != "fp32":
            raise ExportIntegrityError(f"{export_dir}: generation students are exported in fp32 only")
        cls = ExportedSeq2Seq if family == "seq2seq" else ExportedCausalLM
        return cls(export_dir, spec, providers, threads)
    if variant not in VARIANT_SUFFIX:
        raise ExportIntegrityError(f"variant must be one of {sorted(VARIANT_SUFFIX)}, got '{variant}'")
    if f"model{VARIANT_SUFFIX[variant]}.onnx" not in spec["files"]:
        raise ExportIntegrityError(f"{export_dir}: no {variant} variant was exported (export with {variant}=True)")
    cls = ExportedTextClassifier if family == "text-classifier" else ExportedVision
    return cls(export_dir, spec, providers, variant, threads)
