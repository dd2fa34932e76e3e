"""Data selection (survey sections 4-5): keep the training examples worth training on, and say why for every one
removed. Each selector returns a :class:`~suite.selection.record.Selection` (kept ids, removed ids with reasons,
the method, its parameters and a checksum of its input) that packs and ``distill train`` can apply."""

from suite.selection.dedup import minhash_dedup, word_shingles
from suite.selection.record import Selection

__all__ = ["Selection", "minhash_dedup", "word_shingles"]
