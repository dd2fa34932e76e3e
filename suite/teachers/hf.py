"""A local Hugging Face (or timm) model as a frozen teacher. Loads from disk only; never contacts a hub."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from suite.errors import ModelNotFoundError, TeacherError
from suite.teachers.base import TeacherOutput

Task = Literal["classification", "encoder", "causal-lm", "seq2seq", "vision"]
TASKS = ("classification", "encoder", "causal-lm", "seq2seq", "vision")
_TIMM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_CHUNK = 1 << 20


def model_digest(path: Path) -> str:
    """sha256 (16 hex digits) of ``config.json`` and every weight file in ``path`` (names and bytes, sorted).

    Reads every weight byte once when the teacher is built; that is cheap next to loading and asking the model.
    """
    files = [path / "config.json"] + sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


class HFTeacher:
    """A frozen local model answering one of five tasks.

    ``model`` is a directory written by ``save_pretrained`` (with its tokenizer), or for ``task="vision"`` a timm
    directory: ``config.json`` with ``"architecture"`` (and ``"num_classes"``) next to ``model.safetensors`` or
    ``pytorch_model.bin``. Outputs per task:

    - classification: ``logits`` (C,) and ``label`` = argmax
    - encoder: ``embedding`` (D,) = L2-normalised masked mean of the last hidden states
    - causal-lm / seq2seq: greedy ``text`` with ``topk_ids`` / ``topk_logprobs`` (T, top_k) of the model's raw
      next-token distribution at each generated step (``meta["generated_ids"]`` holds the chosen tokens)
    - vision: ``logits`` (C,) and ``label`` for preprocessed image tensors (3, H, W)
    """

    def __init__(
        self,
        model: str | Path,
        task: Task,
        device: str = "cpu",
        max_length: int = 256,
        max_new_tokens: int = 64,
        top_k: int = 5,
        dtype: str | None = None,
    ):
        if task not in TASKS:
            raise TeacherError(f"unknown teacher task '{task}' (known: {', '.join(TASKS)})")
        self.path = Path(model).expanduser().resolve()
        config = self.path / "config.json"
        if not config.is_file():
            what = "no config.json in" if self.path.is_dir() else "no such directory:"
            raise ModelNotFoundError(f"teacher model not found ({what} {self.path}); teachers load local paths only")
        self.task, self.device, self.dtype = task, device, dtype
        self.max_length, self.max_new_tokens, self.top_k = max_length, max_new_tokens, top_k
        # Keyed by the weights, not the path: a teacher retrained into the same directory is a new teacher to the
        # store, so its stale outputs are never reused.
        self.teacher_id = f"{self.path}@{model_digest(self.path)}"
        self._model: torch.nn.Module | None = None
        self._tokenizer: Any = None

    def settings(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "max_length": self.max_length,
            "max_new_tokens": self.max_new_tokens,
            "top_k": self.top_k,
            "dtype": self.dtype,
        }

    # -- loading -------------------------------------------------------------------------------------------------

    @property
    def model(self) -> torch.nn.Module:
        """The frozen model, loaded on first use."""
        if self._model is None:
            model = self._load_timm() if self.task == "vision" else self._load_transformers()
            self._model = _freeze(model.to(self.device))
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (transformers models; loaded with the model)."""
        self.model  # noqa: B018  (loads both on first use)
        return self._tokenizer

    def _load_transformers(self) -> torch.nn.Module:
        import transformers

        auto = {
            "classification": transformers.AutoModelForSequenceClassification,
            "encoder": transformers.AutoModel,
            "causal-lm": transformers.AutoModelForCausalLM,
            "seq2seq": transformers.AutoModelForSeq2SeqLM,
        }[self.task]
        dtype = getattr(torch, self.dtype) if self.dtype else None
        tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        if self.task == "causal-lm":
            # Prompts are continued at their end: pad and truncate on the left so the last token is the prompt's.
            tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        return auto.from_pretrained(self.path, local_files_only=True, dtype=dtype)

    def _load_timm(self) -> torch.nn.Module:
        import timm

        config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        weights = [self.path / name for name in _TIMM_WEIGHTS if (self.path / name).is_file()]
        if "architecture" not in config or not weights:
            raise ModelNotFoundError(
                f"{self.path}: a timm teacher needs 'architecture' in config.json and one of "
                f"{', '.join(_TIMM_WEIGHTS)}"
            )
        model = timm.create_model(
            config["architecture"],
            pretrained=False,
            num_classes=config.get("num_classes", 1000),
            checkpoint_path=str(weights[0]),
        )
        return model.to(getattr(torch, self.dtype)) if self.dtype else model

    # -- answering -----------------------------------------------------------------------------------------------

    def answer(self, inputs: list[Any]) -> list[TeacherOutput]:
        model = self.model
        with torch.no_grad():
            if self.task == "vision":
                return self._classify(model(torch.stack(inputs).to(self.device, next(model.parameters()).dtype)))
            batch = self._encode(inputs)
            if self.task == "classification":
                return self._classify(model(**batch).logits)
            if self.task == "encoder":
                return self._embed(model(**batch).last_hidden_state, batch["attention_mask"])
            return self._generate(model, batch)

    def _text(self, item: Any) -> tuple[str, str | None]:
        if isinstance(item, str):
            return item, None
        if isinstance(item, dict) and "text" in item:
            return item["text"], item.get("text_pair")
        if isinstance(item, list):
            if self._tokenizer.chat_template is None:
                raise TeacherError(f"tokenizer at {self.path} has no chat template; pass plain string prompts")
            return self._tokenizer.apply_chat_template(item, tokenize=False, add_generation_prompt=True), None
        raise TeacherError(f"teacher input of type {type(item).__name__}: expected str, {{'text': ...}} or messages")

    def _encode(self, inputs: list[Any]) -> dict[str, torch.Tensor]:
        # Encoding one by one and padding afterwards lets a batch mix single texts and text pairs.
        tokenizer = self._tokenizer
        encoded = [tokenizer(*self._text(x), truncation=True, max_length=self.max_length) for x in inputs]
        batch = tokenizer.pad(encoded, return_tensors="pt")
        return {
            k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")
        }

    @staticmethod
    def _classify(logits: torch.Tensor) -> list[TeacherOutput]:
        logits = logits.float().cpu()  # (B, C)
        return [TeacherOutput(logits=row, label=int(row.argmax())) for row in logits]

    @staticmethod
    def _embed(hidden: torch.Tensor, mask: torch.Tensor) -> list[TeacherOutput]:
        mask = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)  # (B, D)
        return [TeacherOutput(embedding=row) for row in F.normalize(pooled.float(), dim=-1).cpu()]

    def _generate(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> list[TeacherOutput]:
        """Greedy decoding; top-k of log_softmax over the raw logits, i.e. the teacher's own distribution.

        Raw logits (``output_logits``) rather than processed ``scores`` keep generation-config processors (repetition
        penalties, forced tokens) out of the distillation target.
        """
        batch.pop("token_type_ids", None)
        out = model.generate(
            **batch,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=self._tokenizer.pad_token_id,
        )
        steps = len(out.logits)
        generated = out.sequences[:, -steps:].cpu()  # (B, T); decoder-only prompts and the decoder start come first
        logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1).cpu()  # (B, T, V)
        top = logprobs.topk(min(self.top_k, logprobs.shape[-1]), dim=-1)
        eos = model.generation_config.eos_token_id
        eos_ids = set([eos] if isinstance(eos, int) else eos or [])
        outputs = []
        for b in range(generated.shape[0]):
            ids = generated[b].tolist()
            length = next((t + 1 for t, tok in enumerate(ids) if tok in eos_ids), steps)  # keep the EOS step
            outputs.append(
                TeacherOutput(
                    text=self._tokenizer.decode(ids[:length], skip_special_tokens=True),
                    topk_ids=top.indices[b, :length].long(),
                    topk_logprobs=top.values[b, :length].float(),
                    meta={"generated_ids": ids[:length]},
                )
            )
        return outputs
