"""How good can a MiniLM-L6 cross-encoder teacher get on SemEval-2013 SRA (2-way)? A sweep of the teacher's
settings (input length, learning rate, epochs), each over 3 seeds and as their 3-member ensemble, judged on dev
(whose best epoch a run would keep) and on the official test splits.

The education pack's teacher is this model (``suite.hub.load_minilm``: BERT with its [CLS] pooler head) on the same
pairs and splits (``domains.education.pipeline.load_task``, the full profile's recipe). Two steps, so the training
step can run on a lent GPU machine that has neither the shared data nor room for the full model in its upload:

  prepare (here):  python -m benchmarks.sra_teacher_sweep prepare --out .carry/sra_sweep
      tokenises every pair at each length (ids, segments) and writes MiniLM's weights in fp16 with the word
      embeddings cut to the tokens these pairs use (same model on these inputs; 22 MB instead of 87).
  train (anywhere): python benchmarks/sra_teacher_sweep.py train --data .carry/sra_sweep --out OUT
      trains every config x seed, evaluates after each epoch, writes OUT/sra_teacher_sweep.{json,md}.

Selection is by dev accuracy: the test splits are read, never chosen on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

LENGTHS = (128, 256)
SPLITS = ("train", "dev", "unseen_answers", "unseen_questions", "unseen_domains")
# (max_length, lr, epochs): the pack's teacher today is (128, 5e-5, 4).
CONFIGS = [(128, 5e-5, 4), (256, 5e-5, 4), (256, 3e-5, 8), (256, 1e-4, 4), (128, 3e-5, 8), (256, 5e-5, 8)]
SEEDS = (0, 1, 2)


def prepare(out: Path) -> None:
    """Tokenised splits and a vocabulary-cut fp16 MiniLM under ``out``."""
    from safetensors.torch import save_file

    from domains.education.pipeline import load_task
    from domains.education.recipe import EducationRecipe
    from suite.hub import load_minilm

    data = load_task(EducationRecipe(), "sra")
    splits = {"train": data.train, "dev": data.dev, **data.tests}
    model, tokenizer = load_minilm(num_labels=2)
    arrays: dict[str, np.ndarray] = {}
    used: set[int] = set()
    for length in LENGTHS:
        for name, examples in splits.items():
            enc = tokenizer([e.text for e in examples], [e.text_pair for e in examples], truncation=True,
                            max_length=length)  # fmt: skip
            used.update(i for ids in enc["input_ids"] for i in ids)
            arrays[f"{name}_{length}_ids"] = _ragged(enc["input_ids"])
            arrays[f"{name}_{length}_segments"] = _ragged(enc["token_type_ids"])
            arrays[f"{name}_{length}_lengths"] = np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int32)
    for name, examples in splits.items():
        arrays[f"{name}_labels"] = np.array([e.label for e in examples], dtype=np.int64)
    keep = np.array(sorted(used | {tokenizer.pad_token_id}), dtype=np.int64)
    remap = np.full(len(tokenizer), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    for key in [k for k in arrays if k.endswith("_ids")]:
        padded = arrays[key]
        arrays[key] = np.where(padded >= 0, remap[np.maximum(padded, 0)], -1).astype(np.int32)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "pairs.npz", **arrays)
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    word = "bert.embeddings.word_embeddings.weight"
    state[word] = state[word][torch.from_numpy(keep)]
    save_file({k: v.half().contiguous() for k, v in state.items()}, out / "minilm_fp16.safetensors")
    config = model.config.to_dict() | {"vocab_size": len(keep), "pad_token_id": int(remap[tokenizer.pad_token_id])}
    (out / "config.json").write_text(json.dumps(config))
    for name in splits:
        cut = float((arrays[f"{name}_{max(LENGTHS)}_lengths"] > min(LENGTHS)).mean())
        print(f"[sweep] {name}: {cut:.1%} of the pairs are longer than {min(LENGTHS)} tokens")
    print(f"[sweep] {', '.join(f'{k} {len(v)}' for k, v in splits.items())} pairs; {len(keep)} of "
          f"{len(tokenizer)} tokens used; wrote {out}")  # fmt: skip


def _ragged(rows: list[list[int]]) -> np.ndarray:
    """Rows padded with -1 to the longest (the lengths array says where each ends)."""
    width = max(len(r) for r in rows)
    table = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        table[i, : len(r)] = r
    return table


def load_model(data: Path, device: str, seed: int) -> torch.nn.Module:
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig.from_dict(json.loads((data / "config.json").read_text()) | {"num_labels": 2})
    torch.manual_seed(seed)  # the fresh classification head
    model = BertForSequenceClassification(config)
    state = {k: v.float() for k, v in load_file(data / "minilm_fp16.safetensors").items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        raise RuntimeError(f"weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(device).eval()  # train_one switches dropout on


def batches(arrays: Any, split: str, length: int, batch_size: int, order: np.ndarray, device: str):
    ids, segs = arrays[f"{split}_{length}_ids"], arrays[f"{split}_{length}_segments"]
    lens, labels = arrays[f"{split}_{length}_lengths"], arrays[f"{split}_labels"]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = int(lens[rows].max())
        mask = np.arange(width)[None, :] < lens[rows][:, None]
        yield (
            torch.from_numpy(np.where(mask, ids[rows, :width], 0)).long().to(device),
            torch.from_numpy(mask.astype(np.int64)).to(device),
            torch.from_numpy(np.where(mask, segs[rows, :width], 0)).long().to(device),
            torch.from_numpy(labels[rows]).to(device),
        )


@torch.no_grad()
def predict(model: torch.nn.Module, arrays: Any, split: str, length: int, device: str) -> np.ndarray:
    model.eval()
    order = np.argsort(arrays[f"{split}_{length}_lengths"], kind="stable")
    probs = np.zeros((len(order), 2), dtype=np.float32)
    for k, (ids, mask, segs, _) in enumerate(batches(arrays, split, length, 128, order, device)):
        with torch.autocast(device.split(":")[0], torch.bfloat16, enabled=device.startswith("cuda")):
            logits = model(input_ids=ids, attention_mask=mask, token_type_ids=segs).logits
        probs[order[k * 128 : k * 128 + len(ids)]] = logits.float().softmax(-1).cpu().numpy()
    model.train()
    return probs


def train_one(arrays: Any, data: Path, length: int, lr: float, epochs: int, seed: int, device: str) -> dict[str, Any]:
    """One teacher; the probabilities of every evaluation split after each epoch."""
    model = load_model(data, device, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    n, batch_size = len(arrays["train_labels"]), 32
    steps = epochs * -(-n // batch_size)
    warmup = int(0.1 * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup))
    )
    rng = np.random.default_rng(seed)
    per_epoch = []
    model.train()
    for _ in range(epochs):
        for ids, mask, segs, labels in batches(arrays, "train", length, batch_size, rng.permutation(n), device):
            with torch.autocast(device.split(":")[0], torch.bfloat16, enabled=device.startswith("cuda")):
                logits = model(input_ids=ids, attention_mask=mask, token_type_ids=segs).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        per_epoch.append({s: predict(model, arrays, s, length, device) for s in SPLITS[1:]})
    return {"per_epoch": per_epoch}


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(-1) == labels).mean())


def summarise(arrays: Any, length: int, lr: float, epochs: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per seed: accuracy at the last epoch and at the best dev epoch; the ensemble (mean probabilities) of the
    seeds' best-dev epochs and of their last epochs."""
    labels = {s: arrays[f"{s}_labels"] for s in SPLITS[1:]}
    rows = []
    for run in runs:
        curve = [{s: accuracy(p[s], labels[s]) for s in labels} for p in run["per_epoch"]]
        best = int(np.argmax([c["dev"] for c in curve]))
        rows.append({"curve": curve, "best_dev_epoch": best + 1, "last": curve[-1], "best_dev": curve[best]})
    ensembles = {}
    for pick in ("last", "best_dev"):
        probs = {s: np.mean([run["per_epoch"][-1 if pick == "last" else row["best_dev_epoch"] - 1][s]
                             for run, row in zip(runs, rows, strict=True)], axis=0) for s in labels}  # fmt: skip
        ensembles[pick] = {s: accuracy(probs[s], labels[s]) for s in labels}
    return {"max_length": length, "lr": lr, "epochs": epochs, "seeds": rows, "ensemble": ensembles}


def markdown(results: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| max_length | lr | epochs | pick | dev (seeds) | unseen_answers (seeds) | ensemble dev | "
             "ensemble UA | ensemble UQ | ensemble UD |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for pick in ("last", "best_dev"):
            dev = ", ".join(f"{s[pick]['dev']:.3f}" for s in r["seeds"])
            ua = ", ".join(f"{s[pick]['unseen_answers']:.3f}" for s in r["seeds"])
            e = r["ensemble"][pick]
            lines.append(f"| {r['max_length']} | {r['lr']:g} | {r['epochs']} | {pick} | {dev} | {ua} | "
                         f"{e['dev']:.3f} | {e['unseen_answers']:.3f} | {e['unseen_questions']:.3f} | "
                         f"{e['unseen_domains']:.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def train(data: Path, out: Path, configs: list[tuple[int, float, int]], seeds: tuple[int, ...], quick: bool) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    arrays = dict(np.load(data / "pairs.npz"))
    if quick:  # a smoke test: a few pairs of every split
        arrays = {k: v[: 256 if k.startswith("train_") else 64] for k, v in arrays.items()}
    out.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    doc: dict[str, Any] = {"device": device_name, "torch": torch.__version__, "configs": [], "seconds": 0.0}
    start = time.perf_counter()
    for length, lr, epochs in configs:
        runs = []
        for seed in seeds:
            runs.append(train_one(arrays, data, length, lr, epochs, seed, device))
            print(f"[sweep] max_length {length} lr {lr:g} epochs {epochs} seed {seed}: "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
        doc["configs"].append(summarise(arrays, length, lr, epochs, runs))
        doc["seconds"] = time.perf_counter() - start
        header = f"# SRA teacher sweep on {device_name} ({doc['seconds']:.0f} s, seeds {list(seeds)})"
        (out / "sra_teacher_sweep.json").write_text(json.dumps(doc, indent=1))
        (out / "sra_teacher_sweep.md").write_text(markdown(doc["configs"], header))  # a cut-short run keeps rows
    print((out / "sra_teacher_sweep.md").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=Path(".carry/sra_sweep"))
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, default=Path(".carry/sra_sweep"))
    t.add_argument("--out", type=Path, default=Path("runs/sra_teacher_sweep"))
    t.add_argument("--quick", action="store_true", help="a smoke test: 1 config, seed and epoch")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.out)
        return 0
    configs, seeds = (CONFIGS, SEEDS) if not args.quick else ([(128, 5e-5, 1)], (0,))
    train(args.data, args.out, configs, seeds, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
