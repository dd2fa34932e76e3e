"""The education pack's data: problem-level splits, GSM8K verifier pairs, rationale corruption, SemEval pairs.

Fixtures are written in the real file formats into tmp and loaded through the dataset registry with an explicit
path (which checks that the files exist, not their checksums).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from domains.education.data import (
    Example,
    load_sra,
    load_verifier,
    problem_split,
    rationale_examples,
    sra_pair,
    wrong_answer,
)
from suite.errors import MalformedRowError

MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
N_PROBLEMS = 30


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def problem(i: int) -> tuple[str, str, int]:
    """(question, worked solution, answer) of the i-th toy problem."""
    a, b = i + 2, 3 * i + 1
    question = f"Problem {i}: Sam has {a} marbles and finds {b} more. How many marbles does Sam have?"
    return question, f"Sam has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} marbles.", a + b


@pytest.fixture
def gsm8k_dir(tmp_path: Path) -> Path:
    """train/test with ``#### N`` answers and one example_model_solutions row per test problem, 4 models each."""
    root = tmp_path / "gsm8k"
    root.mkdir()
    train, test, solutions = [], [], []
    for i in range(N_PROBLEMS):
        question, worked, answer = problem(i)
        train.append({"question": f"Train {question}", "answer": f"{worked}\n#### {answer}"})
        test.append({"question": question, "answer": f"{worked}\n#### {answer}"})
        row = {"question": question, "ground_truth": f"{worked}\nA: {answer}"}
        for m, model in enumerate(MODELS):
            correct = (i + m) % 3 != 0
            final = answer if correct else answer + 1 + m
            row[model] = {"is_correct": correct, "solution": f"[{model}] {worked}\nA: {final}"}
        solutions.append(row)
    _jsonl(root / "train.jsonl", train)
    _jsonl(root / "test.jsonl", test)
    _jsonl(root / "example_model_solutions.jsonl", solutions)
    return root


def test_problem_split_is_deterministic_and_matches_the_fraction():
    ids = [f"test-{i}" for i in range(2000)]
    splits = [problem_split(pid, 0.2) for pid in ids]
    assert splits == [problem_split(pid, 0.2) for pid in ids]
    assert set(splits) == {"train", "test"}
    assert 0.17 < splits.count("test") / len(ids) < 0.23
    assert {problem_split(pid, 0.0) for pid in ids} == {"train"}
    assert {problem_split(pid, 1.0) for pid in ids} == {"test"}
    # a larger fraction only moves problems from train to test
    assert all(problem_split(pid, 0.5) == "test" for pid, s in zip(ids, splits, strict=True) if s == "test")


def test_load_verifier_splits_by_problem_and_keeps_every_solution_once(gsm8k_dir: Path):
    splits = load_verifier(str(gsm8k_dir), test_fraction=0.3, rationales=0, seed=0)
    assert set(splits) == {"train", "test"}
    train_groups = {e.group for e in splits["train"]}
    test_groups = {e.group for e in splits["test"]}
    assert train_groups and test_groups and not train_groups & test_groups
    assert train_groups | test_groups == {f"test-{i}" for i in range(N_PROBLEMS)}
    assert all(problem_split(g, 0.3) == "test" for g in test_groups)

    expected = Counter()
    for line in (gsm8k_dir / "example_model_solutions.jsonl").read_text().splitlines():
        row = json.loads(line)
        for model in MODELS:
            expected[(row["question"], row[model]["solution"], int(row[model]["is_correct"]))] += 1
    found = Counter((e.text, e.text_pair, e.label) for e in splits["train"] + splits["test"])
    assert found == expected and len(expected) == 4 * N_PROBLEMS
    # a problem's four solutions share one split
    where: dict[str, set[str]] = {}
    for name in ("train", "test"):
        for e in splits[name]:
            where.setdefault(e.text, set()).add(name)
    assert len(where) == N_PROBLEMS and all(len(names) == 1 for names in where.values())


def test_load_verifier_adds_rationales_from_gsm8k_train(gsm8k_dir: Path):
    splits = load_verifier(str(gsm8k_dir), test_fraction=0.3, rationales=5, seed=0)
    rationales = splits["rationales"]
    assert len(rationales) == 10 and [e.label for e in rationales] == [1, 0] * 5
    assert [e.group for e in rationales[::2]] == [f"train-{i}" for i in range(5)]
    assert rationales[0].text == f"Train {problem(0)[0]}"
    assert rationales[0].text_pair == f"{problem(0)[1]}\nA: {problem(0)[2]}"


def final(solution: str) -> str:
    return solution.rsplit("\nA: ", 1)[1]


def test_rationale_examples_pair_a_correct_and_a_consistent_wrong_solution():
    records = [
        {"id": "train-0", "question": "q0", "rationale": "She pays 3 * 4 = <<3*4=12>>12 dollars.", "answer": "12"},
        {"id": "train-1", "question": "q1", "rationale": "Half of 5 is <<5/2=2.5>>2.5 cups.", "answer": "2.5"},
        {"id": "train-2", "question": "q2", "rationale": "He has 7 - 7 = <<7-7=0>>0 left.", "answer": "0"},
        {"id": "train-3", "question": "q3", "rationale": "No arithmetic at all.", "answer": "4"},
    ]
    for seed in range(20):
        examples = rationale_examples(records, seed)
        assert examples == rationale_examples(records, seed)
        assert len(examples) == 2 * len(records)
        for record, good, bad in zip(records, examples[::2], examples[1::2], strict=True):
            assert isinstance(good, Example) and (good.label, bad.label) == (1, 0)
            assert good.group == bad.group == record["id"] and good.text == bad.text == record["question"]
            assert good.text_pair == f"{record['rationale']}\nA: {record['answer']}"
            wrong = final(bad.text_pair)
            assert float(wrong) != float(record["answer"])
            corrupted = bad.text_pair.rsplit("\nA: ", 1)[0]
            numbers = list(re.finditer(r"-?\d+(?:\.\d+)?", record["rationale"]))
            if numbers:  # the last number written becomes the wrong answer; the rest is unchanged
                start, end = numbers[-1].span()
                assert corrupted == record["rationale"][:start] + wrong + record["rationale"][end:]
            else:
                assert corrupted == record["rationale"]


@pytest.mark.parametrize("answer", ["0", "1", "7", "-3", "12", "2.5", "0.15", "1200", "1600000", "123456789"])
def test_wrong_answer_is_never_the_right_answer(answer):
    for seed in range(200):
        wrong = wrong_answer(answer, random.Random(seed))
        assert wrong != answer and float(wrong) != float(answer), (answer, wrong, seed)
        assert "e" not in wrong  # written as a plain number, like the answers
    assert wrong_answer("seven", random.Random(0)) != "seven"


def test_a_malformed_model_solution_row_names_file_and_line(gsm8k_dir: Path):
    path = gsm8k_dir / "example_model_solutions.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["175b_verification"]["is_correct"]
    path.write_text("\n".join([lines[0], json.dumps(broken), *lines[2:]]) + "\n")
    with pytest.raises(MalformedRowError) as info:
        load_verifier(str(gsm8k_dir), test_fraction=0.3, rationales=0, seed=0)
    assert str(info.value).startswith(f"{path}:2:") and "is_correct" in str(info.value)

    path.write_text("\n".join([*lines[:4], '{"question": "cut off', *lines[5:]]) + "\n")
    with pytest.raises(MalformedRowError) as info:
        load_verifier(str(gsm8k_dir), test_fraction=0.3, rationales=0, seed=0)
    assert str(info.value).startswith(f"{path}:5:") and "invalid JSON" in str(info.value)


def test_load_sra_builds_question_reference_and_answer_pairs(tmp_path: Path):
    root = tmp_path / "semeval2013_task7_sra_2way"
    root.mkdir()
    refs = [{"id": "PL_1a-r1", "category": "BEST", "text": "It is less dense than water."}]
    refs.append({"id": "PL_1a-r2", "category": "GOOD", "text": "It displaces its weight in water."})
    _jsonl(
        root / "questions.jsonl",
        [
            {"corpus": "sciEntsBank", "split": "train", "question_id": "PL_1a", "module": "PL", "qtype": "Q_EXPLAIN",
             "question": "Why does the toy boat float?", "reference_answers": refs,
             "source_file": "xml/training/2way/sciEntsBank/PL-1a.xml"},
            {"corpus": "sciEntsBank", "split": "test-unseen-questions", "question_id": "GR_2", "module": "GR",
             "qtype": None, "question": "What pulls a dropped ball down?",
             "reference_answers": [{"id": "GR_2-r1", "category": None, "text": "Gravity."}],
             "source_file": "xml/test/2way/sciEntsBank/test-unseen-questions/GR-2.xml"},
            {"corpus": "beetle", "split": "train", "question_id": "LAMP_ON_Q", "module": "Circuits", "qtype": None,
             "question": "Why is the lamp on?",
             "reference_answers": [{"id": "r1", "category": None, "text": "Closed."}],
             "source_file": "xml/training/2way/beetle/LAMP_ON_Q.xml"},
        ],
    )  # fmt: skip
    answer = {"answer_match": None, "count": None}
    _jsonl(
        root / "student_answers_sciEntsBank.jsonl",
        [
            {"corpus": "sciEntsBank", "split": "train", "question_id": "PL_1a", "student_answer_id": "PL.1a.1.1",
             "student_answer": "it is lighter than the water", "label_2way": "correct", **answer},
            {"corpus": "sciEntsBank", "split": "train", "question_id": "PL_1a", "student_answer_id": "PL.1a.2.1",
             "student_answer": "because it is red", "label_2way": "incorrect", **answer},
            {"corpus": "sciEntsBank", "split": "test-unseen-questions", "question_id": "GR_2",
             "student_answer_id": "GR.2.1", "student_answer": "gravity", "label_2way": "correct", **answer},
        ],
    )  # fmt: skip
    _jsonl(
        root / "student_answers_beetle.jsonl",
        [{"corpus": "beetle", "split": "train", "question_id": "LAMP_ON_Q", "student_answer_id": "C-LAMP.s1",
          "student_answer": "the switch is closed", "label_2way": "correct", "answer_match": "a1", "count": 2}],
    )  # fmt: skip
    (root / "xml_SHA256SUMS.txt").write_text("")

    splits = load_sra(str(root), corpus="sciEntsBank", references=1)
    assert {name: len(v) for name, v in splits.items()} == {"train": 2, "unseen_questions": 1}
    assert splits["train"][0] == Example(
        "Why does the toy boat float? Reference: It is less dense than water.",
        "it is lighter than the water",
        1,
        "sciEntsBank/PL_1a",
    )
    assert splits["train"][1].label == 0 and splits["train"][1].as_input()["text_pair"] == "because it is red"
    assert splits["unseen_questions"][0].group == "sciEntsBank/GR_2"

    every = load_sra(str(root), corpus="sciEntsBank")["train"][0].text  # by default the first 6, best first
    assert every.endswith("Reference: It is less dense than water. | It displaces its weight in water.")
    both = load_sra(str(root), corpus="both")
    assert [e.group for e in both["train"]] == ["sciEntsBank/PL_1a", "sciEntsBank/PL_1a", "beetle/LAMP_ON_Q"]
    assert both["train"][2].text == "Why is the lamp on? Reference: Closed."


def test_sra_pair_joins_several_references_given_as_a_list_or_one_per_line():
    joined = ("Why? Reference: a closed path | a battery", "it is closed")
    assert sra_pair("Why?", ["a closed path", "a battery"], "it is closed") == joined
    assert sra_pair("Why?", "a closed path\n a battery \n\n", "it is closed") == joined
    assert sra_pair("Why?", "one", "x") == ("Why? Reference: one", "x")


def test_the_dev_cut_of_the_train_part_is_independent_of_the_test_cut():
    """Regression: with one hash for both cuts, no train problem could ever fall into a 10% dev cut."""
    ids = [f"test-{i}" for i in range(2000)]
    train = [pid for pid in ids if problem_split(pid, 0.3) == "train"]
    dev = [pid for pid in train if problem_split(pid, 0.1, salt="dev") == "test"]
    assert 0.07 < len(dev) / len(train) < 0.13


def test_agreement_says_how_many_other_solutions_reach_the_same_answer_and_the_rule_reads_it(gsm8k_dir: Path):
    import re

    from domains.education.data import UNKNOWN_AGREEMENT, agreement_rule

    splits = load_verifier(str(gsm8k_dir), test_fraction=0.3, rationales=2, seed=0, agreement=True)
    solutions = splits["train"] + splits["test"]
    # in the fixture the right solutions share the answer and every wrong one is alone with its own
    for e in solutions:
        count = int(re.search(r"^Other solutions with this answer: (\d) of 3\.\n", e.text_pair).group(1))
        assert (count >= 1) == bool(e.label)
    probs = agreement_rule(solutions)
    assert (probs.argmax(1) == [e.label for e in solutions]).all() and set(probs.max(1)) == {1.0}
    assert all(e.text_pair.startswith(UNKNOWN_AGREEMENT) for e in splits["rationales"])
    assert (agreement_rule(splits["rationales"]) == 0.5).all()  # nothing to agree with: no opinion
    plain = load_verifier(str(gsm8k_dir), test_fraction=0.3, rationales=0, seed=0)
    assert [e.text_pair for e in plain["train"]] == [e.text_pair.split("\n", 1)[1] for e in splits["train"]]


def test_a_rule_in_the_data_becomes_a_baseline_row():
    from types import SimpleNamespace

    import numpy as np

    from domains.education.data import Example
    from suite.pair_pack import PairClassificationPack, PairData

    train = [Example("q", "a", i % 2, f"g{i}") for i in range(6)]
    tests = {"test": [Example("q", "a", 1, "t0"), Example("q", "b", 0, "t1")]}
    rule = lambda examples: np.array([[0.0, 1.0] if e.text_pair == "a" else [1.0, 0.0] for e in examples])  # noqa: E731
    data = PairData(train, [], tests, noisy=tests, rules={"letter": rule})
    seen = {}
    pack = SimpleNamespace(data=data, task=SimpleNamespace(name="toy", labels=["no", "yes"]),
                           metrics=lambda probs, noisy: seen.setdefault(len(seen), probs))  # fmt: skip
    rows = PairClassificationPack.baselines(pack)
    assert set(rows) == {"toy_majority", "toy_overlap", "toy_letter"}
    assert (rows["toy_letter"]["test"].argmax(1) == [1, 0]).all()


def test_dev_holds_out_whole_questions_and_a_share_of_the_other_questions_answers():
    from domains.education.pipeline import dev_cut

    examples = [Example(f"q{q}", f"answer {a % 7}", a % 2, f"q{q}") for q in range(40) for a in range(30)]
    train, dev = dev_cut(examples, questions=0.2, answers=0.2)
    assert sorted(map(id, train + dev)) == sorted(map(id, examples)) and not {id(e) for e in train} & set(map(id, dev))
    train_groups = {e.group for e in train}
    whole = {e.group for e in dev} - train_groups
    assert 3 <= len(whole) <= 14  # held-out questions: none of their answers trains
    seen = [e for e in dev if e.group in train_groups]
    assert 0.05 < len(seen) / sum(e.group in train_groups for e in examples) < 0.4  # answers to questions it trains on
    sides, dev_ids = {}, set(map(id, dev))
    for e in train + dev:  # the same answer to the same question never sits on both sides
        sides.setdefault((e.group, e.text_pair), set()).add(id(e) in dev_ids)
    assert all(len(side) == 1 for side in sides.values())
    only_questions = dev_cut(examples, questions=0.2, answers=0)[1]
    assert {e.group for e in only_questions} == whole
