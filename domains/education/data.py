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


def sra_pair(question: str, reference: str, answer: str) -> tuple[str, str]:
    """(question + reference answer, student answer): the cross-encoder input for short-answer scoring."""
    return f"{question} Reference: {reference}", answer


def verifier_pair(question: str, solution: str) -> tuple[str, str]:
    """(problem, worked solution ending in ``A: <answer>``): the cross-encoder input for the verifier."""
    return question, solution


def _sra_example(record: dict[str, Any]) -> Example:
    text, pair = sra_pair(record["question"], record["reference_answers"][0], record["student_answer"])
    return Example(text, pair, int(record["label"]), f"{record['corpus']}/{record['question_id']}")


def load_sra(path: str | None, corpus: str) -> dict[str, list[Example]]:
    """train + the official test splits (unseen_domains exists for SciEntsBank only)."""
    from suite.data import load_dataset

    splits = load_dataset("semeval2013-sra", path=path or None, corpus=corpus)
    return {name: [_sra_example(r) for r in records] for name, records in splits.items()}


def problem_split(problem_id: str, test_fraction: float, salt: str = "test") -> str:
    """'train' or 'test' from a hash of the problem id: stable across runs, machines and dataset orderings.

    ``salt`` names the cut, so a second cut of the train part (``salt="dev"``) is independent of the first.
    """
    from suite.data.splits import hash_unit

    return "test" if hash_unit(problem_id, salt) < test_fraction else "train"


def _verifier_example(record: dict[str, Any]) -> Example:
    text, pair = verifier_pair(record["question"], record["solution"])
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


def rationale_examples(records: list[dict[str, Any]], seed: int) -> list[Example]:
    """Human GSM8K rationales as verifier training pairs (survey Eq. 4, rationale-augmented training).

    Each rationale becomes a correct solution (``A: <answer>`` appended, the model solutions' format) and a
    corrupted copy whose last computed number and final answer are wrong, so the label hinges on the arithmetic.
    """
    rng = random.Random(seed)
    examples = []
    for record in records:
        question, rationale, answer = record["question"], record["rationale"], record["answer"]
        examples.append(Example(*verifier_pair(question, f"{rationale}\nA: {answer}"), 1, record["id"]))
        wrong = wrong_answer(answer, rng)
        numbers = list(_NUMBER.finditer(rationale))
        corrupted = rationale
        if numbers:  # change the last number written in the rationale too, so the two agree
            last = numbers[-1]
            corrupted = rationale[: last.start()] + wrong + rationale[last.end() :]
        examples.append(Example(*verifier_pair(question, f"{corrupted}\nA: {wrong}"), 0, record["id"]))
    return examples


def load_verifier(path: str | None, test_fraction: float, rationales: int, seed: int) -> dict[str, list[Example]]:
    """Model solutions split by problem into train / test; ``rationales`` > 0 adds that many GSM8K train problems'
    human rationales (two examples each, see :func:`rationale_examples`) as the split ``rationales``."""
    from suite.data import load_dataset

    splits = load_dataset("gsm8k", path=path or None)
    out: dict[str, list[Example]] = {"train": [], "test": []}
    for record in splits["model_solutions"]:
        out[problem_split(record["problem_id"], test_fraction)].append(_verifier_example(record))
    if rationales:
        out["rationales"] = rationale_examples(splits["train"][:rationales], seed)
    return out
