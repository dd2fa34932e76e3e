"""The education pack's two tasks as text pairs: (context, answer) -> incorrect/correct.

- ``sra``: SemEval-2013 Task 7 (SciEntsBank + Beetle), official splits train / unseen answers / unseen questions /
  unseen domains. Context = question + reference answer, answer = the student's answer.
- ``verifier``: GSM8K model-written solutions graded correct/incorrect (Cobbe et al. 2021). The 5,276 real GPT-3
  solutions are split *by problem* so no problem is in two splits. The GSM8K train rationales (human solutions) can
  augment the teacher's training set (survey Eq. 4): each one as a correct solution, and the same rationale with a
  wrong final answer as an incorrect one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LABELS = ["incorrect", "correct"]
SRA_SPLITS = ("unseen_answers", "unseen_questions", "unseen_domains")
VERIFIER_SPLITS = ("test",)


@dataclass(frozen=True)
class Example:
    """One scored pair; ``group`` is what must not straddle splits (question or problem id)."""

    text: str
    text_pair: str
    label: int
    group: str

    def as_input(self) -> dict[str, str]:
        return {"text": self.text, "text_pair": self.text_pair}


def sra_pair(question: str, reference: str | Sequence[str], answer: str) -> tuple[str, str]:
    """(question + reference answer(s), student answer): the cross-encoder input for short-answer scoring. Several
    references (Beetle lists up to 14 per question: best, good, minimal) are joined with `` | ``; a string with one
    reference per line is read as that list, which is how the app takes them."""
    references = reference.splitlines() if isinstance(reference, str) else list(reference)
    return f"{question} Reference: {' | '.join(r.strip() for r in references if r.strip())}", answer


def verifier_pair(question: str, solution: str) -> tuple[str, str]:
    """(problem, worked solution ending in ``A: <answer>``): the cross-encoder input for the verifier."""
    return question, solution


def _sra_example(record: dict[str, Any], references: int) -> Example:
    text, pair = sra_pair(record["question"], record["reference_answers"][:references], record["student_answer"])
    return Example(text, pair, int(record["label"]), f"{record['corpus']}/{record['question_id']}")


def load_sra(path: str | None, corpus: str, references: int = 6) -> dict[str, list[Example]]:
    """train + the official test splits (unseen_domains exists for SciEntsBank only); each pair shows the first
    ``references`` reference answers (SciEntsBank has one per question, Beetle up to 14, best ones first)."""
    from suite.data import load_dataset

    splits = load_dataset("semeval2013-sra", path=path or None, corpus=corpus)
    return {name: [_sra_example(r, references) for r in records] for name, records in splits.items()}


def problem_split(problem_id: str, test_fraction: float, salt: str = "test") -> str:
    """'train' or 'test' from a hash of the problem id: stable across runs, machines and dataset orderings.

    ``salt`` names the cut, so a second cut of the train part (``salt="dev"``) is independent of the first.
    """
    from suite.data.splits import hash_unit

    return "test" if hash_unit(problem_id, salt) < test_fraction else "train"


AGREEMENT = "Other solutions with this answer: {} of {}."
_AGREEMENT = re.compile(r"Other solutions with this answer: (\d+) of (\d+)\.")
UNKNOWN_AGREEMENT = "Other solutions with this answer: unknown."


def solution_agreement(records: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per solution id: (how many of the other solutions to its problem reach the same final answer, how many
    other solutions there are). Self-consistency (Wang et al. 2023) as a verifier input: a deployed verifier ranks
    several sampled solutions of one problem, so it sees them all."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_problem.setdefault(record["problem_id"], []).append(record)
    return {r["id"]: (sum(o["predicted_answer"] == r["predicted_answer"] for o in by_problem[r["problem_id"]]
                          if o is not r), len(by_problem[r["problem_id"]]) - 1) for r in records}  # fmt: skip


def agreement_rule(examples: list[Example]) -> Any:
    """The untrained verifier: correct when at least one other solution reaches the same answer. Class
    probabilities over :data:`LABELS`; a pair whose agreement line cannot be read (a typo in it, a rationale pair)
    gets 0.5 / 0.5."""
    import numpy as np

    out = np.full((len(examples), len(LABELS)), 0.5)
    for i, e in enumerate(examples):
        found = _AGREEMENT.search(e.text_pair)
        if found:
            correct = float(int(found.group(1)) >= 1)
            out[i] = [1.0 - correct, correct]
    return out


def _verifier_example(record: dict[str, Any], agreement: tuple[int, int] | None = None) -> Example:
    # The agreement line leads the solution: truncation to max_length cuts a long solution's end, never this line.
    solution = record["solution"] if agreement is None else f"{AGREEMENT.format(*agreement)}\n{record['solution']}"
    text, pair = verifier_pair(record["question"], solution)
    return Example(text, pair, int(record["is_correct"]), record["problem_id"])


_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")  # "1,200" is one number in GSM8K


def wrong_answer(answer: str, rng: random.Random) -> str:
    """A plausible wrong final answer: the right one shifted by a small offset or scaled by 10."""
    try:
        value = float(answer)
    except ValueError:
        return answer + "0"
    wrong = rng.choice([value + rng.randint(1, 9), value - rng.randint(1, 9), value * 10, value / 2])
    return _plain(wrong) if wrong != value else _plain(value + 1)


def _plain(value: float) -> str:
    # Not ``:g``: its 6 significant digits would write 1600003 as 1.6e+06, i.e. the right answer 1600000.
    return str(int(value)) if value.is_integer() else f"{value:.12g}"


def rationale_examples(records: list[dict[str, Any]], seed: int, agreement: bool = False) -> list[Example]:
    """Human GSM8K rationales as verifier training pairs (survey Eq. 4, rationale-augmented training).

    Each rationale becomes a correct solution (``A: <answer>`` appended, the model solutions' format) and a
    corrupted copy whose last computed number and final answer are wrong, so the label hinges on the arithmetic.
    With ``agreement`` each says it has no other solutions to agree with (:data:`UNKNOWN_AGREEMENT`).
    """
    lead = f"{UNKNOWN_AGREEMENT}\n" if agreement else ""
    rng = random.Random(seed)
    examples = []
    for record in records:
        question, rationale, answer = record["question"], record["rationale"], record["answer"]
        examples.append(Example(*verifier_pair(question, f"{lead}{rationale}\nA: {answer}"), 1, record["id"]))
        wrong = wrong_answer(answer, rng)
        numbers = list(_NUMBER.finditer(rationale))
        corrupted = rationale
        if numbers:  # change the last number written in the rationale too, so the two agree
            last = numbers[-1]
            corrupted = rationale[: last.start()] + wrong + rationale[last.end() :]
        examples.append(Example(*verifier_pair(question, f"{lead}{corrupted}\nA: {wrong}"), 0, record["id"]))
    return examples


def load_verifier(path: str | None, test_fraction: float, rationales: int, seed: int,
                  agreement: bool = False) -> dict[str, list[Example]]:  # fmt: skip
    """Model solutions split by problem into train / test; ``rationales`` > 0 adds that many GSM8K train problems'
    human rationales (two examples each, see :func:`rationale_examples`) as the split ``rationales``. With
    ``agreement``, each solution starts with how many of the other solutions to its problem reach its answer."""
    from suite.data import load_dataset

    splits = load_dataset("gsm8k", path=path or None)
    solutions = splits["model_solutions"]
    agreeing = solution_agreement(solutions) if agreement else {}
    out: dict[str, list[Example]] = {"train": [], "test": []}
    for record in solutions:
        example = _verifier_example(record, agreeing.get(record["id"]))
        out[problem_split(record["problem_id"], test_fraction)].append(example)
    if rationales:
        out["rationales"] = rationale_examples(splits["train"][:rationales], seed, agreement)
    return out
