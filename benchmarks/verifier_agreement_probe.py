"""What a GSM8K solution verifier can learn from, offline: the text (the education pack's MiniLM cross-encoder
teacher stays near the majority class) or the agreement between several solutions of the same problem.

    python -m benchmarks.verifier_agreement_probe [--out docs/results/verifier_agreement_probe.md]

GSM8K's model-written solutions come four per problem (GPT-3 6B and 175B, fine-tuned and verification runs). A rule
that needs no training calls a solution correct when at least ``k`` of the other three reach the same final answer
(self-consistency, Wang et al. 2023). Scored on the verifier's test problems (the education pack's split, 30% of
problems held out) beside the majority class: accuracy and macro-F1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.report import write_markdown


def main(argv: list[str] | None = None) -> int:
    from domains.education.data import problem_split, solution_agreement
    from suite.data import load_dataset
    from suite.eval import accuracy, macro_f1

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/results/verifier_agreement_probe.md")
    parser.add_argument("--test-fraction", type=float, default=0.3)
    args = parser.parse_args(argv)
    solutions = load_dataset("gsm8k")["model_solutions"]
    agreeing = solution_agreement(solutions)  # id -> (others with the same answer, others)
    split = {r["id"]: problem_split(r["problem_id"], args.test_fraction) for r in solutions}
    test = [r for r in solutions if split[r["id"]] == "test"]
    gold = [int(bool(r["is_correct"])) for r in test]
    train_correct = [bool(r["is_correct"]) for r in solutions if split[r["id"]] == "train"]
    majority = int(sum(train_correct) > len(train_correct) / 2)
    rows = {"majority class (of the training problems)": [majority] * len(test)}
    for k in (1, 2, 3):
        rows[f"agrees with >= {k} of the other 3 solutions"] = [int(agreeing[r["id"]][0] >= k) for r in test]
    command = f"python -m benchmarks.verifier_agreement_probe --out {args.out} --test-fraction {args.test_fraction}"
    lines = ["# GSM8K verifier: agreement between solutions of the same problem", "", f"`{command}`", "",
             f"{len(test)} test solutions ({len(test) // 4} problems), {sum(gold) / len(gold):.1%} correct.", "",
             "| rule | accuracy | macro-F1 |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {name} | {accuracy(p, gold):.3f} | {macro_f1(p, gold):.3f} |" for name, p in rows.items()]
    print(write_markdown(Path(args.out), lines).read_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
