"""Bring your own data to the education pack: a CSV / TSV / JSONL of graded answers, mapped by column names, split
by question, with labels of any number of classes or a thresholded score; malformed rows name the file, line and
column; and the whole run on the fixture CSV, whose report and card name the user's dataset, not SemEval."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from domains.education.own_data import OwnData, load_own, read_rows
from suite.config import build_config
from suite.errors import ConfigError, MalformedRowError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "own_answers.csv"


def fixture_rows() -> list[dict[str, str]]:
    with open(FIXTURE, newline="") as handle:
        return list(csv.DictReader(handle))


def own_data_run(root, *settings: str, tiny_teacher: bool = True):
    """The education pack on the fixture under ``root``: the settings every run here shares, then ``settings``;
    with ``tiny_teacher``, a 1-layer BERT over the fixture's words is the teacher to fine-tune."""
    from domains.education.pipeline import run
    from domains.education.recipe import EducationRecipe
    from tests.domains.education_fixtures import write_tiny_teacher

    common = [
        f"output_dir={root / 'run'}", f"report_dir={root / 'report'}", f"model_card_dir={root / 'card'}",
        f"data.path={FIXTURE}", "data.label=grade", "data.group=item", "seeds=[0]", "sra_max_length=48",
        "robustness_examples=8", "bench_repeats=5", "dev_fraction=0.25", "int8=false",
        "sra_teacher_trainer.progress=false",
    ]  # fmt: skip
    if tiny_teacher:
        words = [r[k] for r in fixture_rows() for k in ("question", "reference", "answer")]
        common.append(f"teacher_model={write_tiny_teacher(root / 'teacher', words)}")
    recipe = build_config(EducationRecipe, {}, [*common, *settings])
    return recipe, run(recipe)


def test_labels_of_any_number_of_classes_and_splits_that_keep_questions_whole():
    labels, splits = load_own(OwnData(path=str(FIXTURE), label="grade", group="item"))
    assert labels == ["partial", "right", "wrong"]  # sorted as found
    assert set(splits) == {"train", "unseen_answers", "unseen_questions"}
    assert sum(len(v) for v in splits.values()) == 96
    held_out = {e.group for e in splits["unseen_questions"]}
    assert held_out and not held_out & {e.group for e in splits["train"] + splits["unseen_answers"]}
    assert {e.group for e in splits["unseen_answers"]} <= {e.group for e in splits["train"]}
    first = splits["train"][0]
    assert "Reference:" in first.text and first.label in (0, 1, 2)


def test_class_order_from_the_config_and_a_thresholded_score():
    labels, splits = load_own(OwnData(path=str(FIXTURE), label="grade", labels=["wrong", "partial", "right"]))
    assert labels == ["wrong", "partial", "right"]
    labels, splits = load_own(OwnData(path=str(FIXTURE), score="points", threshold=3))
    assert labels == ["incorrect", "correct"]
    rows = fixture_rows()
    expected = sum(int(r["points"]) >= 3 for r in rows)
    assert sum(e.label for split in splits.values() for e in split) == expected


def test_jsonl_and_tsv_read_like_csv(tmp_path):
    rows = fixture_rows()
    jsonl = tmp_path / "answers.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tsv = tmp_path / "answers.tsv"
    tsv.write_text("".join("\t".join(values) + "\n" for values in [list(rows[0])] + [list(r.values()) for r in rows]))
    expected = [row for _, row in read_rows(OwnData(path=str(FIXTURE), label="grade"))]
    for path in (jsonl, tsv):
        assert [row for _, row in read_rows(OwnData(path=str(path), label="grade"))] == expected
    splits = [load_own(OwnData(path=str(p), label="grade"))[1] for p in (FIXTURE, jsonl)]
    assert splits[0] == splits[1]  # the same rows land in the same splits whatever the format


def without_answer(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "answer"}


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (without_answer, "no column 'answer'"),
        (lambda row: {**row, "answer": "  "}, "column 'answer' is empty"),
        (lambda row: {**row, "points": "lots"}, "column 'points': 'lots' is not a number"),
    ],
)
def test_a_malformed_row_names_the_file_line_and_column(tmp_path, spoil, message):
    rows = fixture_rows()[:5]
    rows[3] = spoil(rows[3])
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(MalformedRowError) as error:
        read_rows(OwnData(path=str(path), score="points", threshold=3))
    assert str(error.value).startswith(f"{path}:4: malformed row: {message}")


def test_a_ragged_csv_row_and_a_grade_outside_the_labels_are_refused(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text(FIXTURE.read_text().replace("\n", "\nq99,only three,columns\n", 1))
    with pytest.raises(MalformedRowError, match=r"answers.csv:2: malformed row: expected 6 columns"):
        read_rows(OwnData(path=str(path), label="grade"))
    with pytest.raises(MalformedRowError, match=r"own_answers.csv:2: .*grade 'wrong' is not one of data.labels"):
        load_own(OwnData(path=str(FIXTURE), label="grade", labels=["right", "partial"]))


def test_too_few_questions_for_the_splits_is_a_config_error(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text("question,answer,label\nq,a,yes\nq,b,no\n")
    with pytest.raises(ConfigError, match="came out empty"):
        load_own(OwnData(path=str(path), reference=""))


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    recipe, summary = own_data_run(
        root, "data.name=Grade 5 Science Quiz", "students=[tiny]", "vocab_size=200", "tiny_dim=16", "tiny_layers=1",
        "sra_teacher_trainer.lr=1e-3", "tiny_trainer.epochs=2", "tiny_trainer.progress=false",
    )  # fmt: skip
    return recipe, summary, root


def test_the_run_names_models_and_report_after_the_users_dataset(own_run):
    recipe, summary, root = own_run
    assert recipe.tasks == ["grade_5_science_quiz"] and recipe.release == ["grade_5_science_quiz_tiny_kd"]
    models = set(summary["models"])
    assert models == {f"grade_5_science_quiz_{m}" for m in ("teacher", "majority", "overlap", "tiny_kd", "tiny_no_kd")}
    for entry in summary["models"].values():
        assert set(entry["metrics"]) == {"unseen_answers", "unseen_questions"}
        assert -1 <= entry["metrics"]["unseen_questions"]["qwk"] <= 1
    checks = summary["tasks"]["grade_5_science_quiz"]["teacher_vs_baselines"]
    assert set(checks) == {"unseen_answers", "unseen_questions"}  # the teacher against majority and overlap
    report = (root / "report" / "education.md").read_text()
    card = (root / "card" / "README.md").read_text()
    assert report.startswith("# Grade 5 Science Quiz:")
    assert "3-way: partial, right, wrong" in report and "own_answers.csv" in card
    for text in (report, card):
        assert "SemEval" not in text and "GSM8K" not in text and "2 layers" not in text  # only what ran
    assert (root / "card" / "export" / "grade_5_science_quiz_tiny_kd").is_dir()


def test_a_classifier_folder_with_another_label_count_is_refused_as_is_and_fine_tuned_with_a_new_head(tmp_path):
    from suite.students.text import hf_classifier
    from tests.domains.education_fixtures import write_tiny_teacher

    folder = write_tiny_teacher(tmp_path / "two_labels", ["a b c"])  # a 2-label head
    with pytest.raises(ConfigError, match="head has 2 labels but the task has 3"):
        hf_classifier(str(folder), 3)
    assert hf_classifier(str(folder), 3, new_head=True).model.config.num_labels == 3


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    recipe, summary = own_data_run(
        root, "students=[tiny]", "vocab_size=200", "tiny_dim=16", "tiny_layers=1", "sra_teacher_trainer.lr=1e-3",
        "tiny_trainer.epochs=1", "tiny_trainer.progress=false", "teacher_ensemble=2", "teacher_neighbours=3",
        "leave_one_teacher_out=true",
        "multi_teacher.weighting=ground_truth", "multi_teacher.conflicts=vote", "release=[]", "transfer.typos=1",
        "transfer.repaired=1", "ensemble_variants=[kd, end2]", "transfer_variants=[kd]",
        "variants={kd: {task: 0.5, kd: 0.5}, end2: {task: 0.5, end2: 0.5}, kd_one: {task: 0.5, kd: 0.5}, "
        "no_kd: {task: 1.0}}",
    )  # fmt: skip
    return recipe, summary, root


def test_an_ensemble_of_teachers_with_leave_one_out_attribution_and_a_transfer_set(ensemble_run):
    recipe, summary, root = ensemble_run
    task = "own_answers"
    kinds = ("kd", "end2", "kd_one", "no_kd", "kd_without_t0", "kd_without_t1", "kd_without_t2")
    students = {f"{task}_tiny_{v}" for v in kinds}
    members = {f"{task}_teacher_member{k}" for k in range(3)}  # two fine-tuned, then the graded neighbours
    assert set(summary["models"]) == students | members | {f"{task}_teacher", f"{task}_majority", f"{task}_overlap"}
    assert summary["models"][f"{task}_tiny_kd_without_t1"]["kd"] is True
    stages = (root / "run" / "stages.json").read_text()
    assert f"{task}/teacher1" in stages  # the second member is a stage of its own
    assert (root / "run" / task / "teacher1_store").is_dir()
    import sqlite3

    assert not (root / "run" / task / "teacher2" / "hf").exists()  # the graded-neighbours teacher has no weights
    for store in ("teacher_store", "teacher1_store", "teacher2_store"):  # each labelled the transfer set too
        index = sqlite3.connect(root / "run" / task / store / "index.sqlite")
        assert index.execute("select count(*) from outputs").fetchone()[0] >= 3 * 43  # train 43, 2 copies each
    report = (root / "report" / "education.md").read_text()
    section = report.split("### Leave-one-teacher-out attribution")[1].split("###")[0]
    assert section.count(f"| {task}_tiny_kd | ") == 3  # one row per teacher left out
    assert f"| {task}_tiny_kd_one | " not in section  # it learns from the first teacher alone: nothing to leave out
    assert "`kd` = 0.5 x task + 0.5 x kd (from all 3 teachers, with the transfer set)" in report
    assert "with the graded-neighbours teacher as one more member (the 3 most similar" in report
    assert "`kd_one` = 0.5 x task + 0.5 x kd (from teacher 1 alone)" in report
    exported = json.loads((root / "run" / "export" / f"{task}_teacher" / "metrics.json").read_text())["params"]
    assert (f"The latency rows of `{task}_teacher` time its exported model, the ensemble's first member "
            f"({exported:,} parameters); the ensemble runs all 3 members") in report  # fmt: skip


def bare_pack(**settings):
    """A pair pack with only its task and the stored teacher logits: 2 members, 3 classes, 4 training pairs and 2
    transfer pairs (what kd_logits and kd_items read; no teacher is trained)."""
    import torch

    from suite.augment import TransferConfig
    from suite.losses import SoftLabelKDConfig
    from suite.pair_pack import PairClassificationPack, PairTask
    from suite.trainer import TrainerConfig

    variants = {"kd": {"task": 0.5, "kd": 0.5}, "ens": {"task": 0.5, "kd": 0.5}, "no_kd": {"task": 1.0}}
    task = PairTask(name="t", labels=["a", "b", "c"], max_length=16, teacher="finetune", teacher_model="x",
                    teacher_trainer=TrainerConfig(), students={"tiny": TrainerConfig()}, seeds={"tiny": [0]},
                    variants=variants, kd=SoftLabelKDConfig(), tiny={}, ensemble=2,
                    transfer=TransferConfig(typos=1), **settings)  # fmt: skip
    pack = PairClassificationPack.__new__(PairClassificationPack)  # skips the teachers; the logic under test is pure
    pack.task, pack.train_logits = task, torch.arange(24.0).view(4, 2, 3)  # (N, K, C)
    pack.transfer = [("q", "a"), ("q", "b")]
    return pack


def test_only_the_listed_variants_learn_from_the_ensemble_and_the_transfer_set():
    pack = bare_pack(ensemble_variants=["ens"], transfer_variants=["kd"])
    variants = {v.name: v for v in pack.variants()}
    assert pack.kd_logits(variants["t_tiny_kd"]).shape == (4, 3)  # the first teacher alone
    assert (pack.kd_logits(variants["t_tiny_kd"]) == pack.train_logits[:, 0]).all()
    assert pack.kd_logits(variants["t_tiny_ens"]).shape == (4, 2, 3)  # every member
    assert pack.members(variants["t_tiny_kd"]) == [0] and pack.members(variants["t_tiny_ens"]) == [0, 1]
    task = pack.task
    assert task.uses_transfer("kd", task.variants["kd"]) and not task.uses_transfer("ens", task.variants["ens"])
    assert not task.uses_transfer("no_kd", task.variants["no_kd"])
    everyone = bare_pack()  # nothing listed: every KD variant learns from the ensemble and on the transfer set
    assert all(everyone.task.uses_ensemble(n, everyone.task.variants[n]) for n in ("kd", "ens"))
    assert all(everyone.task.uses_transfer(n, everyone.task.variants[n]) for n in ("kd", "ens"))


@pytest.mark.parametrize("which", ["ensemble_variants", "transfer_variants"])
def test_a_listed_variant_the_recipe_does_not_have_is_a_config_error(which):
    with pytest.raises(ConfigError, match=rf"{which}: unknown variants \['nope'\]"):
        bare_pack(**{which: ["nope"]}).task.check_variant_sources()


def test_an_end2_variant_off_the_ensemble_and_a_prior_variant_on_it_are_refused():
    pack = bare_pack(ensemble_variants=["kd"])
    pack.task.variants = {"kd": {"task": 1.0, "kd": 1.0}, "e": {"task": 1.0, "end2": 1.0}}
    with pytest.raises(ConfigError, match="variants.e: an end2 term needs an ensemble"):
        pack.task.check_variant_sources()
    pack = bare_pack(ensemble_variants=["b"])
    pack.task.variants = {"b": {"task": 1.0, "prior": 1.0}}
    with pytest.raises(ConfigError, match="variants.b: prior and layers terms learn from one teacher"):
        pack.task.check_variant_sources()
    pack = bare_pack()  # nothing listed: end2 joins the ensemble, the prior variant keeps the first teacher
    pack.task.variants = {"e": {"task": 1.0, "end2": 1.0}, "b": {"task": 1.0, "prior": 1.0}}
    pack.task.check_variant_sources()


@pytest.mark.parametrize("exact_match", [False, True])
def test_the_tiny_students_exact_match_feature_is_in_its_kwargs_only_when_on(exact_match):
    from types import SimpleNamespace

    from domains.education.data import Example
    from suite.pair_pack import student_setup

    task = bare_pack().task
    task.tiny = {"dim": 8, "layers": 1, "vocab_size": 40, "embed_init": "none", "segments": True,
                 "exact_match": exact_match}  # fmt: skip
    data = SimpleNamespace(train=[Example("heat flows to cold", "heat flows", i % 2, f"g{i}") for i in range(4)])
    kwargs = student_setup(task, "tiny", data)["kwargs"]
    # off, the kwargs are those of every student trained before the feature: their stage fingerprints still match
    assert kwargs.get("exact_match", False) is exact_match and ("exact_match" in kwargs) is exact_match


def test_a_changed_posterior_rebuilds_only_the_students_that_sample_it():
    """The SGLD posterior is sampled in a prior variant's student stage and saved beside it: its settings are in
    that stage's fingerprint (a resumed run with another step size samples again), and in no other student's."""
    import dataclasses
    from types import SimpleNamespace

    from suite.stages import fingerprint
    from suite.trainer import TrainerConfig

    pack = bare_pack(ensemble_variants=["kd"])
    pack.task.variants = {"kd": {"task": 0.5, "kd": 0.5}, "bayes": {"task": 1.0, "prior": 3.0}}
    pack.students, pack.data = {"tiny": {"kwargs": {}, "trainer": TrainerConfig()}}, SimpleNamespace(train=[])

    def fingerprints():
        return {pack.recipe_name(v): fingerprint(pack.student_settings(v)) for v in pack.variants()}

    before = fingerprints()
    pack.task.posterior = dataclasses.replace(pack.task.posterior, lr=1e-4)
    after = fingerprints()
    assert after["bayes"] != before["bayes"] and after["kd"] == before["kd"]


def test_calibrated_variants_divide_their_teachers_logits_by_each_ones_temperature_on_dev(monkeypatch):
    """A calibrated variant learns from each of its teachers' logits over that teacher's temperature on dev (fitted by
    NLL; > 1 for a teacher surer than it is right), one per member for an ensemble variant; the same variant left
    out of the list keeps the raw logits (identity), and its stage's fingerprint is the one it had before."""
    from types import SimpleNamespace

    import torch

    from domains.education.data import Example
    from suite import pair_pack
    from suite.eval import fit_temperature
    from suite.students.text import build_vocab_tokenizer
    from suite.trainer import TrainerConfig

    dev_labels = [0, 1, 1, 2]
    dev_logits = {  # both right on 3 of 4: teacher 0 sure of all four, teacher 1 unsure of all
        0: torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [3.0, 0, 0], [0, 0, 3.0]]),
        1: torch.tensor([[0.5, 0, 0], [0, 0.5, 0], [0.5, 0, 0], [0, 0, 0.5]]),
    }
    monkeypatch.setattr(pair_pack, "teacher_logits", lambda teacher, examples, task_dir, member: dev_logits[member])
    pack = bare_pack(ensemble_variants=["ens", "ens_cal"], transfer_variants=["ens"],
                     calibrated_variants=["kd_cal", "ens_cal", "bayes"])  # fmt: skip
    kd = {"task": 0.5, "kd": 0.5}
    pack.task.variants = {"kd": kd, "kd_cal": kd, "ens": kd, "ens_cal": kd, "bayes": {"task": 1.0, "prior": 3.0}}
    pack.task.check_variant_sources()
    pack.teachers, pack.dir, pack.transfer_logits = [None, None], Path("unused"), torch.zeros(2, 2, 3)
    pack.students = {"tiny": {"kwargs": {}, "trainer": TrainerConfig()}}
    pack.data = SimpleNamespace(train=[Example("q", "a", 0, "g")] * 4,
                                dev=[Example("q", "a", y, "g") for y in dev_labels])  # fmt: skip
    variants = {pack.recipe_name(v): v for v in pack.variants()}
    tokenizer = build_vocab_tokenizer(["q a"], vocab_size=50)

    def learnt(name):
        return torch.stack([torch.as_tensor(i["teacher_logits"]) for i in pack.kd_items(variants[name], tokenizer)])

    t0, t1 = (fit_temperature(dev_logits[k], dev_labels) for k in (0, 1))
    assert t0 > 1 > t1  # the overconfident teacher is softened, the underconfident one sharpened
    first = pack.train_logits[:, 0]
    assert torch.equal(learnt("kd"), first) and torch.allclose(learnt("kd_cal"), first / t0)
    assert torch.allclose(learnt("bayes"), first / t0)
    assert torch.allclose(learnt("ens_cal")[:, 1], pack.train_logits[:, 1] / t1)
    assert torch.equal(learnt("ens")[:4], pack.train_logits)  # the ensemble's raw logits, then the transfer pairs
    assert "calibrated" in pack.student_settings(variants["kd_cal"])
    assert "calibrated" not in pack.student_settings(variants["kd"])


def test_a_calibrated_variant_must_learn_from_stored_teacher_outputs():
    pack = bare_pack(calibrated_variants=["no_kd"])
    with pytest.raises(ConfigError, match="calibrated_variants: no_kd learns from no stored teacher output"):
        pack.task.check_variant_sources()
    with pytest.raises(ConfigError, match=r"calibrated_variants: unknown variants \['nope'\]"):
        bare_pack(calibrated_variants=["nope"]).task.check_variant_sources()


def test_a_layer_truncated_student_distils_the_teachers_intermediate_layers(tmp_path):
    """TinyBERT-style: a 2-layer MiniLM student learns layers 3 and 6 of the fine-tuned MiniLM teacher (hidden
    states and attention maps) from the live teacher, beside its no-KD twin."""
    _, summary = own_data_run(
        tmp_path,
        "students=[minilm2]",
        "sra_teacher_trainer.epochs=1",
        "minilm2_trainer.progress=false",
        "variants={layers: {task: 1.0, layers: 1.0}, no_kd: {task: 1.0}}",
        "release=[]",
        "layer_map.layer_map={1: 3, 2: 6}",
        "minilm2_trainer.log_every=1",
        tiny_teacher=False,
    )  # the default teacher: MiniLM-L6, whose layers and tokenizer the 2-layer student shares
    models = summary["models"]
    assert models["own_answers_minilm2_layers"]["kd"] is True and models["own_answers_minilm2_no_kd"]["kd"] is False
    history = (tmp_path / "run" / "students" / "own_answers_minilm2_layers-s0" / "metrics.jsonl").read_text()
    logged = [json.loads(line) for line in history.splitlines() if '"train"' in line]
    assert logged and all(row["layers_loss"] > 0 for row in logged)  # trained on the live teacher's layers


def test_self_distillation_mutual_learning_and_bayesian_kd_variants_run_on_the_same_stages(tmp_path):
    """An `exits` variant (the student's deepest layer teaches an exit on its first layer) and a `mutual` one (a
    wider peer trained alongside) learn from no teacher; a `prior` variant (Bayesian KD's teacher-informed prior,
    weight lambda) does."""
    _, summary = own_data_run(
        tmp_path, "students=[tiny]", "vocab_size=200", "tiny_dim=16", "tiny_layers=2", "release=[]",
        "tiny_trainer.progress=false", "tiny_trainer.epochs=1", "tiny_trainer.log_every=1", "exits.layers=[1]",
        "variants={exits: {task: 1.0, exits: 1.0}, bayes: {task: 1.0, prior: 2.0}, dml: {task: 1.0, mutual: 1.0}, "
        "no_kd: {task: 1.0}}",
        "posterior.samples=3", "posterior.burn_in=2", "posterior.thin=1", "posterior.lr=1e-4",
        "calibrated_variants=[bayes]",
    )  # fmt: skip
    models = summary["models"]
    calibration = summary["tasks"]["own_answers"]["teacher_calibration"]["0"]  # the prior's teacher, on dev
    assert calibration["temperature"] > 0 and 0 <= calibration["dev_ece_after"] <= 1
    assert models["own_answers_tiny_bayes"]["kd"] is True and models["own_answers_tiny_exits"]["kd"] is False
    bayes = models["own_answers_tiny_bayes"]["metrics"]["unseen_questions"]
    assert 0 <= bayes["posterior_ece"] <= 1 and 0 <= bayes["posterior_selective_accuracy_80"] <= 1
    assert "posterior_ece" not in models["own_answers_tiny_exits"]["metrics"]["unseen_questions"]
    report = (tmp_path / "report" / "education.md").read_text()
    assert "Bayesian KD: MAP weights vs the SGLD posterior" in report
    assert f"teacher 1: {calibration['temperature']:.2f} (dev ECE" in report
    assert "`bayes` = 1 x task + 2 x prior (calibrated on dev)" in report
    assert models["own_answers_tiny_dml"]["kd"] is False  # its peer learns from the labels too, not a teacher
    assert models["own_answers_tiny_dml"]["params"] == models["own_answers_tiny_no_kd"]["params"]  # the peer stays
    for variant, term in (("exits", "exits_loss"), ("bayes", "prior_loss"), ("dml", "mutual_loss")):
        history = (tmp_path / "run" / "students" / f"own_answers_tiny_{variant}-s0" / "metrics.jsonl").read_text()
        logged = [json.loads(line) for line in history.splitlines() if '"train"' in line]
        assert logged and all(row[term] > 0 for row in logged)


def test_distill_data_select_then_distill_train_on_the_kept_rows(tmp_path):
    """The CLI round trip: `distill data select` removes planted copies of answers from the user's table, and
    `distill train` on a YAML recipe naming that selection trains and evaluates on the kept rows only."""
    import yaml

    from suite.cli import main
    from tests.domains.education_fixtures import write_tiny_teacher

    rows = fixture_rows()
    copies = [dict(r, answer=r["answer"] + " .") for r in rows[:12]]  # a copied answer, one full stop added
    table = tmp_path / "answers.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + copies)
    assert main(["data", "select", "minhash", str(table), "--column", "answer", "--out", str(tmp_path / "sel")]) == 0
    selection = json.loads((tmp_path / "sel" / "selection.json").read_text())
    kept = selection["kept"]
    assert len(kept) <= len(rows)  # each copy or its original went
    assert len(selection["removed"]) == len(rows) + 12 - len(kept)
    assert len((tmp_path / "sel" / "selected.jsonl").read_text().splitlines()) == len(kept)

    words = [r[k] for r in rows for k in ("question", "reference", "answer")]
    config = {
        "domain": "education", "profile": "quick", "output_dir": str(tmp_path / "run"),
        "report_dir": str(tmp_path / "report"), "model_card_dir": str(tmp_path / "card"),
        "data": {"path": str(table), "label": "grade", "group": "item",
                 "selection": str(tmp_path / "sel" / "selection.json")},
        "teacher_model": str(write_tiny_teacher(tmp_path / "teacher", words)), "seeds": [0], "students": ["tiny"],
        "vocab_size": 200, "tiny_dim": 16, "tiny_layers": 1, "sra_max_length": 48, "robustness_examples": 8,
        "bench_repeats": 5, "dev_fraction": 0.25, "int8": False,
        "sra_teacher_trainer": {"progress": False}, "tiny_trainer": {"epochs": 1, "progress": False},
    }  # fmt: skip
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "recipe.yaml")]) == 0
    summary = json.loads((tmp_path / "report" / "education.json").read_text())
    sizes = summary["tasks"]["answers"]["examples"]
    assert sum(sizes.values()) == len(kept) < len(rows) + 12  # the copies never reached training or evaluation


def test_teachers_only_then_students_only_sittings_are_reused_by_the_publishing_sitting(tmp_path, capsys):
    import sqlite3

    shared = ["students=[tiny]", "vocab_size=200", "tiny_dim=16", "tiny_layers=1", "tiny_trainer.epochs=1",
              "tiny_trainer.progress=false", "teacher_ensemble=2", "release=[]", "transfer.typos=1",
              "variants={kd: {task: 0.5, kd: 0.5}, no_kd: {task: 1.0}}", "dev_answers_fraction=0"]  # fmt: skip
    _, summary = own_data_run(tmp_path, *shared, "teacher_members=[1]")
    assert summary == {"teachers": {"own_answers": [1]}}
    stages = json.loads((tmp_path / "run" / "stages.json").read_text())
    assert set(stages) == {"own_answers/teacher1"} and stages["own_answers/teacher1"]["done"]
    assert not (tmp_path / "report" / "education.md").exists()  # nothing after the teachers
    index = sqlite3.connect(tmp_path / "run" / "own_answers" / "teacher1_store" / "index.sqlite")
    assert index.execute("select count(*) from outputs").fetchone()[0] == 2 * 43  # train 43 + their typo copies
    capsys.readouterr()
    _, summary = own_data_run(tmp_path, *shared, "students_only=true")  # then the students, and nothing after
    assert "[own_answers/teacher1] up to date" in capsys.readouterr().out
    assert summary == {"students": {"own_answers": ["own_answers_tiny_kd-s0", "own_answers_tiny_no_kd-s0"]}}
    assert not (tmp_path / "report" / "education.md").exists()
    _, summary = own_data_run(tmp_path, *shared)  # the whole run on the same directory takes them as built
    out = capsys.readouterr().out
    assert "[students/own_answers_tiny_kd-s0] up to date" in out and "fine-tuning" not in out
    assert {"own_answers_teacher_member0", "own_answers_teacher_member1"} <= set(summary["models"])
    assert (tmp_path / "report" / "education.md").exists()


def test_the_full_profile_gives_each_task_its_own_teachers_variants_and_transfer_set():
    from domains.education.pipeline import pair_task
    from domains.education.recipe import PROFILES, EducationRecipe

    assert build_config(EducationRecipe, {}, [*PROFILES["full"], "tasks=[verifier]"]).ensemble_tasks == ["sra"]
    recipe = build_config(EducationRecipe, {}, PROFILES["full"])
    sra, verifier = pair_task(recipe, "sra"), pair_task(recipe, "verifier")
    assert sra.ensemble == 3 and sra.transfer_used and sra.ensemble_variants == ["ensemble", "end2", "combined"]
    assert verifier.ensemble == 1 and not verifier.transfer_used  # the verifier's variants are none of those
    assert list(verifier.variants) == ["no_kd", "kd"] and verifier.ensemble_variants == []
    pack = bare_pack(student_variants={"tiny": ["kd", "no_kd"]})
    assert [v.name for v in pack.variants()] == ["t_tiny_kd", "t_tiny_no_kd"]  # the 2-layer / tiny split


@pytest.mark.parametrize("setting, message", [
    ("student_variants={tiny: [nope]}", r"student_variants.tiny: unknown variants \['nope'\]"),
    ("teacher_members=[2]", r"teacher_members.*choose from \[0, 1\]"),
    ("ensemble_tasks=[nope]", r"ensemble_tasks.*choose from sra, verifier"),
    ("teacher_members=[0]\nstudents_only=true", r"students_only.*not both"),
    ("tiny_segments=false\ntiny_exact_match=true", r"tiny_exact_match.*needs tiny_segments=true"),
])  # fmt: skip
def test_per_task_and_per_student_settings_name_what_exists(setting, message):
    from domains.education.recipe import EducationRecipe

    with pytest.raises(ConfigError, match=message):
        build_config(EducationRecipe, {}, ["tasks=[sra]", "teacher_ensemble=2", *setting.split("\n")])


def test_a_transfer_set_student_at_equal_steps_trains_as_long_as_its_twin():
    from suite.pair_pack import equal_step_budget
    from suite.trainer import TrainerConfig

    config = equal_step_budget(TrainerConfig(epochs=6, batch_size=32), labelled=100)
    assert (config.max_steps, config.eval_every, config.epochs) == (6 * 4, 4, 6)  # 4 batches an epoch, labelled only
