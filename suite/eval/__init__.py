"""Evaluation metrics for distilled students (survey section 6): task quality, semantic similarity, calibration,
robustness, teacher-student agreement and efficiency.

Pure functions on lists, numpy arrays and torch tensors. Importing this package loads numpy, scipy and torch only;
sklearn, sacrebleu, rouge-score, matplotlib, mauve-text and transformers are imported by the functions that use them.
"""

from suite.eval.calibration import (
    calibration_bins,
    expected_calibration_error,
    fit_temperature,
    predictive_entropy,
    reliability_diagram,
    selective_accuracy,
)
from suite.eval.distillation import js_divergence, kl_divergence, linear_cka, representation_cosine_similarity
from suite.eval.efficiency import (
    compression_ratio,
    flops,
    latency,
    parameter_count,
    peak_memory,
    retention,
    size_on_disk,
    speedup,
)
from suite.eval.robustness import (
    PERTURBATIONS,
    attack_success_rate,
    evaluate_robustness,
    performance_drop_rate,
    perturb,
    register_perturbation,
)
from suite.eval.semantic import bert_score, mauve, mauve_from_features, text_features, token_embeddings
from suite.eval.task import (
    accuracy,
    bleu,
    distinct_n,
    exact_match,
    macro_f1,
    normalize_answer,
    paraphrase_agreement,
    perplexity,
    quadratic_weighted_kappa,
    rouge,
    self_bleu,
    token_f1,
)

__all__ = [
    "PERTURBATIONS",
    "selective_accuracy",
    "accuracy",
    "attack_success_rate",
    "bert_score",
    "bleu",
    "calibration_bins",
    "compression_ratio",
    "distinct_n",
    "evaluate_robustness",
    "exact_match",
    "expected_calibration_error",
    "fit_temperature",
    "flops",
    "js_divergence",
    "kl_divergence",
    "latency",
    "linear_cka",
    "macro_f1",
    "mauve",
    "mauve_from_features",
    "normalize_answer",
    "paraphrase_agreement",
    "parameter_count",
    "peak_memory",
    "performance_drop_rate",
    "perplexity",
    "perturb",
    "predictive_entropy",
    "quadratic_weighted_kappa",
    "register_perturbation",
    "reliability_diagram",
    "representation_cosine_similarity",
    "retention",
    "rouge",
    "self_bleu",
    "size_on_disk",
    "speedup",
    "text_features",
    "token_embeddings",
    "token_f1",
]
