"""Soft prompts for synthetic data: per label, a few learned input vectors (peft prompt tuning, Lester et al. 2021)
prepended to a frozen local causal LM so that sampling from it writes texts of that label (survey section 4.2).

Only the soft prompt trains (``num_virtual_tokens x hidden`` numbers per label); the LM stays as it is. Each label's
prompt is saved as a peft adapter folder under ``out/<index>/`` with ``soft_prompts.json`` naming the labels, and
:class:`SoftPromptGenerator` samples from them for :func:`suite.condense.synthetic.synthesize`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from suite.condense.synthetic import Request
from suite.errors import ConfigError
from suite.progress import progress_bar


def _load_lm(path: str):  # noqa: ANN202 - transformers types
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _batches(tokenizer, texts: list[str], batch_size: int, max_length: int, generator: torch.Generator):  # noqa: ANN001, ANN202
    order = torch.randperm(len(texts), generator=generator).tolist()
    for start in range(0, len(order), batch_size):
        # the start token first, as when sampling: the prompt learns to lead from it into a text of its label
        begin = tokenizer.bos_token or tokenizer.eos_token or ""
        chunk = [begin + texts[i] + (tokenizer.eos_token or "") for i in order[start : start + batch_size]]
        batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        yield batch, labels


def train_soft_prompts(lm_path: str, texts: Sequence[str], labels: Sequence[str], out: str | Path,
                       num_virtual_tokens: int = 8, epochs: int = 3, lr: float = 0.03, batch_size: int = 8,
                       max_length: int = 128, seed: int = 0, progress: bool = True) -> dict[str, float]:  # fmt: skip
    """Train one soft prompt per label on that label's texts; returns each label's final mean training loss."""
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    by_label: dict[str, list[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        by_label.setdefault(label, []).append(text)
    if not by_label:
        raise ConfigError("soft prompts need labelled texts")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    losses: dict[str, float] = {}
    names = sorted(by_label)
    with progress_bar(len(names) * epochs, "soft prompts", "epoch", progress) as bar:
        for index, label in enumerate(names):
            torch.manual_seed(seed)
            base, tokenizer = _load_lm(lm_path)
            config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=num_virtual_tokens,
                                        prompt_tuning_init=PromptTuningInit.RANDOM)  # fmt: skip
            model = get_peft_model(base, config)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
            generator = torch.Generator().manual_seed(seed)
            model.train()
            for _ in range(epochs):
                epoch_losses = []
                for batch, targets in _batches(tokenizer, by_label[label], batch_size, max_length, generator):
                    loss = model(**batch, labels=targets).loss
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    epoch_losses.append(float(loss.detach()))
                losses[label] = sum(epoch_losses) / len(epoch_losses)
                bar.update(1)
            model.save_pretrained(out / str(index))
    (out / "soft_prompts.json").write_text(json.dumps({"lm": str(lm_path), "labels": names, "losses": losses},
                                                      indent=2))  # fmt: skip
    return losses


class SoftPromptGenerator:
    """Samples texts per label from a causal LM with that label's soft prompt (from :func:`train_soft_prompts`)."""

    def __init__(self, folder: str | Path, lm_path: str | None = None, max_new_tokens: int = 64,
                 temperature: float = 1.0, top_p: float = 0.95):  # fmt: skip
        from peft import PeftModel

        folder = Path(folder)
        info_path = folder / "soft_prompts.json"
        if not info_path.is_file():
            raise ConfigError(f"{folder}: no soft_prompts.json; train the prompts with train_soft_prompts first")
        info = json.loads(info_path.read_text())
        base, self.tokenizer = _load_lm(lm_path or info["lm"])
        self.labels = list(info["labels"])
        self.model = PeftModel.from_pretrained(base, folder / "0", adapter_name="0").eval()
        for index in range(1, len(self.labels)):
            self.model.load_adapter(folder / str(index), adapter_name=str(index))
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p

    @torch.no_grad()
    def generate(self, requests: list[Request]) -> list[str]:
        unknown = sorted({r.label for r in requests} - set(self.labels))
        if unknown:
            raise ConfigError(f"no soft prompt for labels {unknown}; trained for {self.labels}")
        return [self._sample(str(self.labels.index(r.label)), r.seed) for r in requests]

    def _sample(self, adapter: str, seed: int) -> str:
        """Nucleus sampling written out: the soft prompt's vectors, then the start token and the words so far, through
        the base LM each step. (peft's own ``generate`` re-prepends the prompt at every cached step with this
        transformers version, so the text would be conditioned on a growing stack of prompts.)"""
        self.model.set_adapter(adapter)
        prompt = self.model.get_prompt(batch_size=1)  # (1, virtual tokens, hidden)
        base = self.model.get_base_model()
        embed = base.get_input_embeddings()
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        ids = [start]
        generator = torch.Generator().manual_seed(seed)
        for _ in range(self.max_new_tokens):
            inputs = torch.cat([prompt, embed(torch.tensor([ids]))], dim=1)
            logits = base(inputs_embeds=inputs).logits[0, -1] / max(self.temperature, 1e-6)
            token = _nucleus(logits, self.top_p, generator)
            if token == self.tokenizer.eos_token_id:
                break
            ids.append(token)
        return self.tokenizer.decode(ids[1:], skip_special_tokens=True).strip()


def _nucleus(logits: torch.Tensor, top_p: float, generator: torch.Generator) -> int:
    """Sample from the smallest set of tokens whose probability reaches ``top_p``."""
    probs, order = logits.softmax(-1).sort(descending=True)
    keep = (probs.cumsum(0) - probs) < top_p  # the first token always stays
    probs = probs * keep
    return int(order[torch.multinomial(probs / probs.sum(), 1, generator=generator)])
