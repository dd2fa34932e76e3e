"""Data selection (survey sections 4-5): keep the training examples worth training on, and say why for every one
removed. Each selector returns a :class:`~suite.selection.record.Selection` (kept ids, removed ids with reasons,
the method, its parameters and a checksum of its input) that packs and ``distill train`` can apply."""

from suite.selection.dedup import minhash_dedup, word_shingles
from suite.selection.lm import HFCausalLM, NgramLM, moore_lewis, perplexity_filter
from suite.selection.record import Selection
from suite.selection.rules import RuleConfig, rule_filter
from suite.selection.semantic import (
    gradient_similarity_select,
    herding_select,
    kcenter_greedy,
    semdedup,
    sentence_embeddings,
)
from suite.selection.shapley import knn_shapley, knn_utility, select_by_value, tmc_shapley

__all__ = [
    "HFCausalLM",
    "NgramLM",
    "RuleConfig",
    "Selection",
    "gradient_similarity_select",
    "herding_select",
    "kcenter_greedy",
    "knn_shapley",
    "knn_utility",
    "minhash_dedup",
    "moore_lewis",
    "perplexity_filter",
    "rule_filter",
    "select_by_value",
    "semdedup",
    "sentence_embeddings",
    "tmc_shapley",
    "word_shingles",
]
