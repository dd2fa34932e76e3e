"""Small SemEval-2013 and GSM8K folders in the real file formats, and a tiny BERT teacher saved with
``save_pretrained``: enough for the whole education pipeline to run in about a minute on CPU."""

from __future__ import annotations

import json
import random
from pathlib import Path

QUESTIONS = [
    ("PL_1", "Why does the toy boat float?", "It is less dense than water."),
    ("EL_2", "Why does the bulb light?", "The bulb is in a closed path with the battery."),
    ("MG_3", "What does the magnet attract?", "The magnet attracts iron objects."),
    ("WA_4", "Where does the water go when it evaporates?", "It turns into water vapor in the air."),
]
RIGHT = ["because it is less dense", "closed path with the battery", "it attracts iron", "it becomes vapor in air"]
WRONG = ["because it is red", "the bulb is broken", "it attracts wood", "it disappears forever"]
SEMEVAL_SPLITS = {"train": 12, "test-unseen-answers": 4, "test-unseen-questions": 4, "test-unseen-domains": 4}


def write_semeval(root: Path) -> Path:
    """questions.jsonl + student_answers_{sciEntsBank,beetle}.jsonl, as the dataset's derived files."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    questions, answers = [], {"sciEntsBank": [], "beetle": []}
    for corpus in answers:
        for split, per_question in SEMEVAL_SPLITS.items():
            if corpus == "beetle" and split == "test-unseen-domains":
                continue
            for k, (qid, question, reference) in enumerate(QUESTIONS):
                references = [{"id": f"{qid}-r1", "category": "BEST", "text": reference}]
                questions.append({"corpus": corpus, "split": split, "question_id": qid, "module": qid[:2],
                                  "qtype": None, "question": question, "reference_answers": references,
                                  "source_file": f"xml/{split}/{qid}.xml"})  # fmt: skip
                for n in range(per_question):
                    correct = rng.random() < 0.5
                    text = (RIGHT if correct else WRONG)[k] + rng.choice(["", " I think", " yes"])
                    answers[corpus].append({"corpus": corpus, "split": split, "question_id": qid,
                                            "student_answer_id": f"{corpus}.{split}.{qid}.{n}", "student_answer": text,
                                            "label_2way": "correct" if correct else "incorrect",
                                            "answer_match": None, "count": None})  # fmt: skip
    _jsonl(root / "questions.jsonl", questions)
    (root / "xml_SHA256SUMS.txt").write_text("")  # the mirror's manifest of the original XML; required, unused here
    for corpus, rows in answers.items():
        _jsonl(root / f"student_answers_{corpus}.jsonl", rows)
    return root


def write_gsm8k(root: Path, problems: int = 24) -> Path:
    """train.jsonl / test.jsonl (question, answer ending '#### N') and example_model_solutions.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    train, test, solutions = [], [], []
    for _ in range(problems):
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        question = f"Tom reads {a} pages a day. How many pages in {b} days?"
        work = f"He reads {a} * {b} = <<{a}*{b}={a * b}>>{a * b} pages."
        train.append({"question": question, "answer": f"{work}\n#### {a * b}"})
        test.append({"question": question, "answer": f"{work}\n#### {a * b}"})
        row = {"question": question, "ground_truth": f"{work}\nA: {a * b}"}
        for model in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            correct = rng.random() < 0.5
            answer = a * b if correct else a * b + rng.randint(1, 5)
            row[model] = {"is_correct": correct, "solution": f"He reads {a} * {b} = {answer} pages.\nA: {answer}"}
        solutions.append(row)
    _jsonl(root / "train.jsonl", train)
    _jsonl(root / "test.jsonl", test)
    _jsonl(root / "example_model_solutions.jsonl", solutions)
    return root


def write_tiny_teacher(root: Path, texts: list[str]) -> Path:
    """A 1-layer, 16-wide BERT classifier with a word-level tokenizer over ``texts``, saved like a hub model."""
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    words = sorted({w for text in texts for w in pre_tokenizers.Whitespace().pre_tokenize_str(text) for w in [w[0]]})
    vocab = {token: i for i, token in enumerate(special + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    wrapped = tf.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        model_max_length=128,
    )  # fmt: skip
    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=128, num_labels=2)  # fmt: skip
    tf.BertForSequenceClassification(config).save_pretrained(root)
    wrapped.save_pretrained(root)
    return root


def corpus_texts(semeval: Path, gsm8k: Path) -> list[str]:
    texts = []
    for path in [*semeval.glob("*.jsonl"), *gsm8k.glob("*.jsonl")]:
        texts += path.read_text().splitlines()
    return texts + ["Reference :"]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
