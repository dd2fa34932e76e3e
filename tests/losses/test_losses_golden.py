"""Golden values: each loss on fixed inputs against ``golden.json``.

The expected values were computed once by the plain-numpy reference formulas below (loops where that keeps them
obviously right), never by the functions under test. Regenerate after a deliberate change of formula with
``python tests/losses/test_losses_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path

import numpy as np
import pytest
import torch

import suite.losses as L

GOLDEN = Path(__file__).with_name("golden.json")


# --- numpy references ---------------------------------------------------------------------------------------------


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_huber(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    return float(np.where(d < 1.0, 0.5 * d**2, d - 0.5).mean())


def np_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_soft_label(student, teacher, temperature, mask):
    log_ps, log_pt = np_log_softmax(student / temperature), np_log_softmax(teacher / temperature)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(-1)
    return temperature**2 * kl[mask].mean()


def ref_hinton(student, teacher, labels, temperature, alpha):
    log_ps = np_log_softmax(student)
    nll = [-log_ps[i, y] for i, y in enumerate(labels) if y != -100]
    kd = ref_soft_label(student, teacher, temperature, np.ones(len(labels), bool))
    return alpha * np.mean(nll) + (1 - alpha) * kd


def ref_topk(student, ids, logprobs, temperature, mask):
    log_ps = np_log_softmax(student / temperature)
    log_q = np_log_softmax(logprobs / temperature)
    values = []
    for pos in map(tuple, np.argwhere(mask)):
        gathered = log_ps[pos][ids[pos]]
        values.append(sum(np.exp(lq) * (lq - ls) for lq, ls in zip(log_q[pos], gathered, strict=True)))
    return temperature**2 * np.mean(values)


def ref_feature(student, teacher, metric, mask):
    values = []
    for pos in map(tuple, np.argwhere(mask)):
        s, t = student[pos], teacher[pos]
        values.append(np.mean((s - t) ** 2) if metric == "mse" else 1 - np_cos(s, t))
    return np.mean(values)


def ref_attention(student, teacher, mask, average_heads):
    if average_heads:
        student, teacher = student.mean(1, keepdims=True), teacher.mean(1, keepdims=True)
    total, count = 0.0, 0
    for b, h, i, j in np.ndindex(*student.shape):
        if mask[b, i] and mask[b, j]:
            total, count = total + (student[b, h, i, j] - teacher[b, h, i, j]) ** 2, count + 1
    return total / count


def ref_rkd_distance(student, teacher):
    def normalised(e):
        d = np.array([np.linalg.norm(e[i] - e[j]) for i in range(len(e)) for j in range(i + 1, len(e))])
        return d / d.mean()

    return np_huber(normalised(student), normalised(teacher))


def ref_rkd_angle(student, teacher):
    def angles(e):
        return np.array([np_cos(e[i] - e[j], e[k] - e[j]) for j, i, k in permutations(range(len(e)), 3)])

    return np_huber(angles(student), angles(teacher))


def ref_info_nce(query, positive, negatives, temperature):
    values = []
    for b in range(len(query)):
        if negatives is None:
            others = [positive[j] for j in range(len(positive)) if j != b]
        else:
            others = negatives if negatives.ndim == 2 else negatives[b]
        sims = np.array([np_cos(query[b], positive[b])] + [np_cos(query[b], n) for n in others]) / temperature
        values.append(-np_log_softmax(sims)[0])
    return np.mean(values)


def ref_cosine_alignment(features, target):
    return np.mean([1 - np_cos(f, t) for f, t in zip(features, target, strict=True)])


def ref_multi_stage(features, weights, biases, target):
    total = 0.0
    for name, f in features.items():
        pooled = f.mean((2, 3)) if f.ndim == 4 else f
        total += ref_cosine_alignment(pooled @ np.asarray(weights[name]).T + biases[name], target)
    return total


def ref_reconstruction(pred, target, mask):
    return np.mean([np.sum((pred[pos] - target[pos]) ** 2) for pos in map(tuple, np.argwhere(mask))])


# --- cases: inputs, reference, and the call under test ------------------------------------------------------------


def make_inputs() -> dict[str, dict]:
    """Seeded inputs, rounded so that the JSON holds them exactly enough."""
    rng = np.random.default_rng(2024)

    def normal(*shape):
        return rng.standard_normal(shape).round(4)

    def softmax_maps(*shape):
        return np.exp(np_log_softmax(normal(*shape))).round(6)

    teacher_seq = normal(2, 3, 6)
    top_ids = np.argsort(-teacher_seq, axis=-1)[..., :3]
    top_logprobs = np.take_along_axis(np_log_softmax(teacher_seq), top_ids, -1).round(6)
    return {
        "soft_label_kd": dict(
            student=normal(2, 3, 5), teacher=normal(2, 3, 5), temperature=2.0, mask=[[1, 1, 0], [1, 0, 1]]
        ),
        "hinton_kd": dict(
            student=normal(5, 4), teacher=normal(5, 4), labels=[0, 3, -100, 1, 2], temperature=2.0, alpha=0.3
        ),
        "topk_kd": dict(
            student=normal(2, 3, 6), ids=top_ids, logprobs=top_logprobs, temperature=1.5, mask=[[1, 0, 1], [1, 1, 0]]
        ),
        "feature_mse": dict(student=normal(2, 3, 4), teacher=normal(2, 3, 4), mask=[[1, 1, 1], [0, 1, 1]]),
        "feature_cosine": dict(student=normal(2, 3, 4), teacher=normal(2, 3, 4), mask=[[1, 0, 1], [1, 1, 1]]),
        "attention": dict(
            student=softmax_maps(2, 2, 3, 3), teacher=softmax_maps(2, 2, 3, 3), mask=[[1, 1, 0], [1, 1, 1]]
        ),
        "attention_average_heads": dict(
            student=softmax_maps(1, 2, 3, 3), teacher=softmax_maps(1, 3, 3, 3), mask=[[1, 1, 1]]
        ),
        "rkd_distance": dict(student=normal(5, 3), teacher=normal(5, 4)),
        "rkd_angle": dict(student=normal(5, 3), teacher=normal(5, 4)),
        "info_nce_in_batch": dict(query=normal(4, 3), positive=normal(4, 3), temperature=0.5),
        "info_nce_shared": dict(query=normal(4, 3), positive=normal(4, 3), negatives=normal(5, 3), temperature=0.5),
        "info_nce_per_query": dict(
            query=normal(4, 3), positive=normal(4, 3), negatives=normal(4, 2, 3), temperature=0.1
        ),
        "cosine_alignment": dict(features=normal(3, 4), target=normal(3, 4)),
        "multi_stage_alignment": dict(
            features={"per": normal(2, 3, 2, 2), "plan": normal(2, 2)},
            weights={"per": normal(4, 3), "plan": normal(4, 2)},
            biases={"per": normal(4), "plan": normal(4)},
            target=normal(2, 4),
        ),
        "masked_reconstruction": dict(pred=normal(2, 4, 3), target=normal(2, 4, 3), mask=[[1, 0, 0, 1], [0, 1, 1, 1]]),
    }


def reference(name: str, c: dict) -> float:
    a = {k: np.asarray(v) if isinstance(v, list) else v for k, v in c.items()}
    if "mask" in a:
        a["mask"] = a["mask"].astype(bool)
    match name:
        case "soft_label_kd":
            return ref_soft_label(a["student"], a["teacher"], a["temperature"], a["mask"])
        case "hinton_kd":
            return ref_hinton(a["student"], a["teacher"], a["labels"], a["temperature"], a["alpha"])
        case "topk_kd":
            return ref_topk(a["student"], a["ids"], a["logprobs"], a["temperature"], a["mask"])
        case "feature_mse" | "feature_cosine":
            return ref_feature(a["student"], a["teacher"], name.split("_")[1], a["mask"])
        case "attention" | "attention_average_heads":
            return ref_attention(a["student"], a["teacher"], a["mask"], name == "attention_average_heads")
        case "rkd_distance":
            return ref_rkd_distance(a["student"], a["teacher"])
        case "rkd_angle":
            return ref_rkd_angle(a["student"], a["teacher"])
        case "info_nce_in_batch" | "info_nce_shared" | "info_nce_per_query":
            return ref_info_nce(a["query"], a["positive"], a.get("negatives"), a["temperature"])
        case "cosine_alignment":
            return ref_cosine_alignment(a["features"], a["target"])
        case "multi_stage_alignment":
            features = {k: np.asarray(v) for k, v in a["features"].items()}
            return ref_multi_stage(features, a["weights"], a["biases"], a["target"])
        case "masked_reconstruction":
            return ref_reconstruction(a["pred"], a["target"], a["mask"])
    raise KeyError(name)


def under_test(name: str, c: dict) -> torch.Tensor:
    def t(key, dtype=torch.float64):
        return torch.tensor(c[key], dtype=dtype)

    mask = torch.tensor(c["mask"], dtype=torch.bool) if "mask" in c else None
    match name:
        case "soft_label_kd":
            return L.soft_label_kd_loss(t("student"), t("teacher"), c["temperature"], mask)
        case "hinton_kd":
            labels = t("labels", torch.long)
            return L.hinton_kd_loss(t("student"), t("teacher"), labels, c["temperature"], c["alpha"])
        case "topk_kd":
            return L.topk_kd_loss(t("student"), t("ids", torch.long), t("logprobs"), c["temperature"], mask)
        case "feature_mse" | "feature_cosine":
            return L.feature_distillation_loss(t("student"), t("teacher"), name.split("_")[1], mask)
        case "attention" | "attention_average_heads":
            average = name == "attention_average_heads"
            return L.attention_transfer_loss(t("student"), t("teacher"), mask, average_heads=average)
        case "rkd_distance":
            return L.rkd_distance_loss(t("student"), t("teacher"))
        case "rkd_angle":
            return L.rkd_angle_loss(t("student"), t("teacher"))
        case "info_nce_in_batch" | "info_nce_shared" | "info_nce_per_query":
            negatives = t("negatives") if "negatives" in c else None
            return L.info_nce_loss(t("query"), t("positive"), negatives, c["temperature"])
        case "cosine_alignment":
            return L.cosine_alignment_loss(t("features"), t("target"))
        case "multi_stage_alignment":
            dims = {k: len(v[0]) for k, v in c["features"].items()}
            module = L.MultiStageCosineAlignment(dims, target_dim=len(c["target"][0])).double()
            with torch.no_grad():
                for k, projector in module.projectors.items():
                    projector.weight.copy_(torch.tensor(c["weights"][k], dtype=torch.float64))
                    projector.bias.copy_(torch.tensor(c["biases"][k], dtype=torch.float64))
            features = {k: torch.tensor(v, dtype=torch.float64) for k, v in c["features"].items()}
            return module(features, t("target"))
        case "masked_reconstruction":
            return L.masked_reconstruction_loss(t("pred"), t("target"), mask)
    raise KeyError(name)


def to_json(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def write_golden() -> None:
    cases = {name: to_json(inputs) for name, inputs in make_inputs().items()}
    golden = {name: {"inputs": c, "expected": float(reference(name, c))} for name, c in cases.items()}
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")


# --- tests --------------------------------------------------------------------------------------------------------

CASES = json.loads(GOLDEN.read_text())


def test_golden_covers_every_public_loss():
    called = {"soft_label_kd", "hinton_kd", "topk_kd", "feature_mse", "feature_cosine", "attention", "rkd_distance"}
    called |= {"rkd_angle", "info_nce_in_batch", "cosine_alignment", "multi_stage_alignment", "masked_reconstruction"}
    assert called <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_matches_golden(name):
    case = CASES[name]
    assert under_test(name, case["inputs"]).item() == pytest.approx(case["expected"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_reference_still_gives_golden(name):
    case = CASES[name]
    assert reference(name, case["inputs"]) == pytest.approx(case["expected"], rel=1e-12, abs=1e-15)


if __name__ == "__main__":
    write_golden()
