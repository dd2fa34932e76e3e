"""Vision-language teachers that answer about an image in labelled sections (a rationale in stages).

A :class:`VisionTask` says what the model is asked (a scene line, optional per-image context, a format
instruction) and which labelled sections its answer must hold, in order; a pack defines its own (the driving pack
asks for perception -> prediction -> planning, as VERDI does). The answer is split into those sections, which a text
encoder later embeds as targets for a student's intermediate features.

Both backends take inputs ``{"image_png_b64": str, "context": str | None}`` (build them with :func:`vlm_inputs`);
they are JSON-serialisable, so :meth:`~suite.teachers.TeacherOutputStore.run` keys them, and each output is
``TeacherOutput(text=raw answer, meta={"sections": {section: text, ...}})``.

An answer that does not parse is kept, not raised: its raw text is stored with ``meta["sections"] = None`` and
``meta["parse_error"]``. The request itself succeeded and cost a VLM call; raising would drop the whole batch's
answers, and a rerun (with the same settings, hence the same store keys) would not ask again anyway. Consumers filter
on ``meta["sections"] is not None`` and can count the failures; a better parser can re-read the stored text later.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suite.errors import ModelNotFoundError, TeacherError
from suite.teachers.base import TeacherBatchError, TeacherOutput
from suite.teachers.hf import _freeze, model_digest
from suite.teachers.openai_compat import OpenAICompatibleTeacher

# A section header at the start of a line: optional markdown heading / list marker / emphasis around the section
# name, then a separator (":", "-", en/em dash) or the end of the line (a heading whose text starts on the next line).
# "**Perception:**", "1. Perception -", "## PLANNING", "- *prediction*: ..." all match; "Planning ahead, ..." does not.
_HEADER = (
    r"^[ \t]*(?:#{{1,6}}[ \t]*)?(?:(?:\d+[.)]|[-*+\u2022])[ \t]*)?[*_]{{0,3}}[ \t]*"
    r"(?P<section>{names})[ \t]*[*_]{{0,3}}[ \t]*"
    r"(?:[:\-\u2013\u2014][ \t]*[*_]{{0,3}}|$)"
)


@dataclass(frozen=True)
class VisionTask:
    """What a vision-language teacher is asked about each image, and the labelled sections its answer must hold."""

    scene: str  # the first line: what the image shows
    instruction: str  # the format demand, read last
    sections: tuple[str, ...]  # lower-case section names, in the order asked

    @property
    def digest(self) -> str:
        """Part of every backend's settings: rewording the task makes new store keys instead of stale answers."""
        return hashlib.sha256(f"{self.scene}\n{self.instruction}\n{self.sections}".encode()).hexdigest()[:12]

    def prompt(self, context: str | None = None) -> str:
        """The scene line, then ``context`` (a state summary, allowed actions, ...), then the format instruction."""
        parts = [self.scene]
        if context is not None and context.strip():
            parts.append(f"Context:\n{context.strip()}")
        parts.append(self.instruction)
        return "\n\n".join(parts)

    def parse(self, text: str) -> dict[str, str]:
        """``{section: text}`` from an answer.

        Headers may carry markdown (``**Perception:**``, ``## Planning``), numbering (``1. Perception -``) and any
        case; a section runs until the next header, may span several lines (each stripped, blank lines dropped),
        and text before the first header is ignored. When a section has several headers the first one counts.
        Raises :class:`~suite.errors.TeacherError` naming the missing or empty sections (never quoting the answer).
        """
        pattern = re.compile(_HEADER.format(names="|".join(map(re.escape, self.sections))), re.I | re.M)
        headers = list(pattern.finditer(text))
        found: dict[str, str] = {}
        for i, match in enumerate(headers):
            name = match.group("section").lower()
            if name in found:
                continue
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            lines = (line.strip() for line in text[match.end() : end].splitlines())
            found[name] = "\n".join(line for line in lines if line)
        missing = [name for name in self.sections if not found.get(name)]
        if missing:
            expected = ", ".join(f"'{name.capitalize()}:'" for name in self.sections)
            raise TeacherError(
                f"VLM answer ({len(text)} characters) lacks the {', '.join(missing)} section(s); expected labelled "
                f"{expected} sections"
            )
        return {name: found[name] for name in self.sections}


def encode_image_png_base64(image: np.ndarray) -> str:
    """Base64 of the lossless PNG encoding of a ``(H, W, 3)`` uint8 RGB image."""
    from PIL import Image

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        what = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise TeacherError(f"VLM images must be uint8 numpy arrays of shape (H, W, 3), got a {what}")
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image_png_base64(data: str) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB image of :func:`encode_image_png_base64`'s output."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return np.asarray(image.convert("RGB"))


def _chat(task: VisionTask, image_png_b64: str, context: str | None) -> list[dict[str, Any]]:
    content = [
        {"type": "text", "text": task.prompt(context)},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image_png_b64}"}},
    ]
    return [{"role": "user", "content": content}]


def vlm_messages(task: VisionTask, image: np.ndarray, context: str | None = None) -> list[dict[str, Any]]:
    """One OpenAI chat user message holding ``task.prompt(context)`` and the image as a base64 PNG data URL."""
    return _chat(task, encode_image_png_base64(image), context)


def vlm_inputs(images: Sequence[np.ndarray], contexts: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
    """Teacher inputs ``{"image_png_b64", "context"}`` for ``(H, W, 3)`` uint8 images (and optional contexts)."""
    contexts = [None] * len(images) if contexts is None else list(contexts)
    if len(contexts) != len(images):
        raise TeacherError(f"got {len(images)} images but {len(contexts)} contexts")
    return [
        {"image_png_b64": encode_image_png_base64(image), "context": context}
        for image, context in zip(images, contexts, strict=True)
    ]


def _unpack(input: Any, index: int) -> tuple[str, str | None]:
    if not isinstance(input, dict) or not isinstance(input.get("image_png_b64"), str):
        raise TeacherError(f"VLM teacher input {index}: expected {{'image_png_b64': str, 'context': str | None}}")
    return input["image_png_b64"], input.get("context")


def _with_sections(task: VisionTask, output: TeacherOutput) -> TeacherOutput:
    """The raw answer plus its parsed sections, or ``sections=None`` and the reason (see the module docstring)."""
    meta = dict(output.meta)
    try:
        meta["sections"] = task.parse(output.text or "")
    except TeacherError as error:
        meta["sections"], meta["parse_error"] = None, str(error)
    return TeacherOutput(text=output.text, meta=meta)


def _explain(
    teacher: Any, images: Sequence[np.ndarray], contexts: Sequence[str | None] | None
) -> list[dict[str, str] | None]:
    return [output.meta["sections"] for output in teacher.answer(vlm_inputs(images, contexts))]


class OpenAICompatibleVLMTeacher:
    """Sectioned answers from a vision-language model behind an OpenAI-compatible chat server (vLLM, SGLang, ...).

    Wraps an :class:`~suite.teachers.OpenAICompatibleTeacher` in chat mode, so retries, concurrency and the
    partial-batch policy are its. The image travels as a base64 PNG data URL in an ``image_url`` content part.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        task: VisionTask,
        api_key_env: str = "OPENAI_API_KEY",
        max_tokens: int = 512,
        temperature: float = 0.0,
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
    ):
        self.backend = OpenAICompatibleTeacher(
            base_url,
            model,
            api_key_env=api_key_env,
            mode="chat",
            max_tokens=max_tokens,
            temperature=temperature,
            concurrency=concurrency,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )
        self.task = task
        self.teacher_id = f"openai-vlm:{model}"

    def settings(self) -> dict[str, Any]:
        return {**self.backend.settings(), "prompt": self.task.digest}

    def answer(self, inputs: list[Any]) -> list[TeacherOutput]:
        chats = [_chat(self.task, *_unpack(x, i)) for i, x in enumerate(inputs)]
        try:
            outputs = self.backend.answer(chats)
        except TeacherBatchError as error:  # keep what was answered, parsed, so the store can save it
            answered = {i: _with_sections(self.task, o) for i, o in error.answered.items()}
            raise TeacherBatchError(answered, error.failures, error.size) from None
        return [_with_sections(self.task, o) for o in outputs]

    def explain(
        self, images: Sequence[np.ndarray], contexts: Sequence[str | None] | None = None
    ) -> list[dict[str, str] | None]:
        """The parsed sections per ``(H, W, 3)`` uint8 image (``None`` where the answer did not parse).

        Asks the model directly; run :func:`vlm_inputs` through a ``TeacherOutputStore`` to keep the answers.
        """
        return _explain(self, images, contexts)


class HFVisionLanguageTeacher:
    """A frozen local vision-language model (``AutoProcessor`` + ``AutoModelForImageTextToText``) answering greedily.

    ``model`` is a directory written by ``save_pretrained`` for both the model and its processor. The prompt goes
    through the processor's chat template (one user turn: the image, then ``task.prompt``) when it has one,
    else it is the processor's image token, a newline and the instruction. The model loads on first use.
    """

    def __init__(
        self,
        model: str | Path,
        task: VisionTask,
        device: str = "cpu",
        max_new_tokens: int = 256,
        dtype: str | None = None,
    ):
        self.path = Path(model).expanduser().resolve()
        if not (self.path / "config.json").is_file():
            what = "no config.json in" if self.path.is_dir() else "no such directory:"
            raise ModelNotFoundError(f"VLM teacher not found ({what} {self.path}); teachers load local paths only")
        self.task, self.device, self.max_new_tokens, self.dtype = task, device, max_new_tokens, dtype
        # Keyed by the weights: a model retrained into the same folder is a new teacher to the store.
        self.teacher_id = f"{self.path}@{model_digest(self.path)}"
        self._model: torch.nn.Module | None = None
        self._processor: Any = None

    def settings(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "dtype": self.dtype, "prompt": self.task.digest}

    def _load(self) -> None:
        import transformers

        processor = transformers.AutoProcessor.from_pretrained(self.path, local_files_only=True)
        # Prompts are continued at their end, so a batch is padded on the left.
        processor.tokenizer.padding_side = "left"
        if processor.tokenizer.pad_token is None:
            processor.tokenizer.pad_token = processor.tokenizer.eos_token
        dtype = getattr(torch, self.dtype) if self.dtype else None
        model = transformers.AutoModelForImageTextToText.from_pretrained(self.path, local_files_only=True, dtype=dtype)
        self._processor, self._model = processor, _freeze(model.to(self.device))

    @property
    def model(self) -> torch.nn.Module:
        """The frozen model, loaded with its processor on first use."""
        if self._model is None:
            self._load()
        return self._model

    @property
    def processor(self) -> Any:
        if self._processor is None:
            self._load()
        return self._processor

    def prompt(self, context: str | None = None) -> str:
        """The model's prompt text for one image, with the image placeholder where the processor expects it."""
        processor = self.processor
        if processor.chat_template is None:
            return f"{processor.image_token}\n{self.task.prompt(context)}"
        turn = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.task.prompt(context)}]}
        return processor.apply_chat_template([turn], add_generation_prompt=True, tokenize=False)

    def answer(self, inputs: list[Any]) -> list[TeacherOutput]:
        from PIL import Image

        model, processor = self.model, self.processor
        unpacked = [_unpack(x, i) for i, x in enumerate(inputs)]
        images = [Image.fromarray(decode_image_png_base64(b64)) for b64, _ in unpacked]
        prompts = [self.prompt(context) for _, context in unpacked]
        batch = processor(images=images, text=prompts, padding=True, return_tensors="pt")
        batch = batch.to(self.device, model.dtype)  # casts only the floating tensors (pixel values)
        with torch.no_grad():
            sequences = model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=processor.tokenizer.pad_token_id,
            )
        generated = sequences[:, batch["input_ids"].shape[1] :].cpu()  # (B, T) after the left-padded prompts
        texts = processor.batch_decode(generated, skip_special_tokens=True)
        return [_with_sections(self.task, TeacherOutput(text=text.strip())) for text in texts]

    def explain(
        self, images: Sequence[np.ndarray], contexts: Sequence[str | None] | None = None
    ) -> list[dict[str, str] | None]:
        """The parsed sections per ``(H, W, 3)`` uint8 image (``None`` where the answer did not parse).

        Asks the model directly; run :func:`vlm_inputs` through a ``TeacherOutputStore`` to keep the answers.
        """
        return _explain(self, images, contexts)
