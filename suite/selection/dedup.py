r"""Near-duplicate removal with MinHash LSH (Broder 1997; the banding index of Indyk & Motwani), on datasketch.

Each text becomes the set of its word n-grams (shingles); MinHash with ``num_perm`` permutations estimates the
Jaccard similarity :math:`|A \cap B| / |A \cup B|` of two sets, and locality-sensitive hashing over bands of the
signature finds the pairs likely above ``threshold`` without comparing all pairs; the exact Jaccard of the candidate
pairs decides. Texts are taken in order: a text whose similarity to an already kept one reaches the threshold is
removed, with that text and the similarity as the reason; the first of each group of near-duplicates is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from suite.selection.record import Selection, texts_checksum

TOKEN = re.compile(r"\w+")


def word_shingles(text: str, n: int = 3) -> set[bytes]:
    """The set of lower-cased word n-grams of ``text`` (a text shorter than n words is one shingle)."""
    words = TOKEN.findall(text.lower())
    if len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


def minhash_dedup(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128, ngram: int = 3,
                  seed: int = 1, candidate_margin: float = 0.2) -> Selection:  # fmt: skip
    """Keep the first of every group of near-duplicates: texts whose word-``ngram`` shingle sets have exact Jaccard
    >= ``threshold``. LSH proposes candidates at ``threshold - candidate_margin`` (so pairs right at the threshold,
    whose MinHash estimate falls below it half the time, are still proposed); the exact Jaccard decides."""
    from datasketch import MinHash, MinHashLSH

    if not 0 < threshold <= 1 or not 0 <= candidate_margin < threshold:
        raise ValueError(f"need 0 < threshold <= 1 and 0 <= candidate_margin < threshold, got {threshold}, "
                         f"{candidate_margin}")  # fmt: skip
    shingles = [word_shingles(t, ngram) for t in texts]
    signatures = MinHash.bulk(shingles, num_perm=num_perm, seed=seed)
    index = MinHashLSH(threshold=threshold - candidate_margin, num_perm=num_perm)
    kept, removed, duplicate_of = [], {}, {}
    for i, signature in enumerate(signatures):
        matches = [
            (len(shingles[i] & shingles[j]) / len(shingles[i] | shingles[j]), j) for j in index.query(signature)
        ]
        best = max(matches, default=(0.0, -1))
        if best[0] >= threshold:
            removed[i] = f"near-duplicate of {best[1]} (Jaccard {best[0]:.2f})"
            duplicate_of[i] = best[1]
            continue
        index.insert(i, signature)
        kept.append(i)
    params = {"threshold": threshold, "num_perm": num_perm, "ngram": ngram, "seed": seed,
              "candidate_margin": candidate_margin}  # fmt: skip
    return Selection("minhash", params, texts_checksum(list(texts)), kept, removed, duplicate_of)
