"""Stage-level resume: reuse finished stages, rerun changed ones and everything after them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from suite.errors import SuiteError
from suite.runner import Pack, Variant, train_variants
from suite.stages import StageBusy, StageLedger, fingerprint


class Pipeline:
    """teacher -> student, each writing one file and counting its builds."""

    def __init__(self, root: Path):
        self.root, self.builds = root, {"teacher": 0, "student": 0}

    def _build(self, name: str, text: str):
        def build(out: Path) -> str:
            self.builds[name] += 1
            out.mkdir(parents=True, exist_ok=True)
            (out / "model.txt").write_text(text)
            return text

        return build

    def run(self, teacher_lr: float, student_lr: float) -> str:
        ledger = StageLedger(self.root, log=lambda _: None)
        read = lambda out: (out / "model.txt").read_text()  # noqa: E731
        teacher = ledger.run("teacher", {"lr": teacher_lr}, self._build("teacher", f"t{teacher_lr}"), read)
        return ledger.run(
            "student", {"lr": student_lr}, self._build("student", f"{teacher}/s{student_lr}"), read, after=["teacher"]
        )


def test_a_rerun_reuses_finished_stages(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    assert pipeline.run(1.0, 2.0) == "t1.0/s2.0"
    assert pipeline.run(1.0, 2.0) == "t1.0/s2.0"
    assert pipeline.builds == {"teacher": 1, "student": 1}


def test_a_reuse_only_ledger_reads_finished_stages_and_never_rebuilds_or_deletes_one(tmp_path: Path) -> None:
    Pipeline(tmp_path).run(teacher_lr=0.1, student_lr=0.01)
    recorded = (tmp_path / "stages.json").read_text()
    files = sorted(tmp_path.rglob("*"))
    ledger = StageLedger(tmp_path, log=lambda _: None, reuse_only=True)
    read = lambda out: (out / "model.txt").read_text()  # noqa: E731
    never = lambda out: pytest.fail("a reuse-only ledger built a stage")  # noqa: E731
    assert ledger.run("teacher", {"lr": 0.1}, never, read) == "t0.1"
    # a finished stage without a loader reads its own files again, as on any rerun
    assert ledger.run("teacher", {"lr": 0.1}, lambda out: (out / "model.txt").read_text()) == "t0.1"
    with pytest.raises(SuiteError, match="'teacher'.*built from other inputs"):
        ledger.run("teacher", {"lr": 0.2}, never, read)
    with pytest.raises(SuiteError, match="'critic'.*never run"):
        ledger.run("critic", {}, never, read)
    unfinished = {"fingerprint": fingerprint({"inputs": {}, "after": {}}), "done": False}  # a crashed build
    crashed = json.loads(recorded) | {"critic": unfinished}
    (tmp_path / "stages.json").write_text(json.dumps(crashed))
    with pytest.raises(SuiteError, match="'critic'.*did not finish"):
        ledger.run("critic", {}, never, read)
    assert (tmp_path / "teacher" / "model.txt").read_text() == "t0.1"  # the changed stage was not removed
    assert json.loads((tmp_path / "stages.json").read_text()) == crashed
    assert sorted(tmp_path.rglob("*")) == files  # not even a lock file for the stage it refused


def test_a_changed_stage_reruns_with_every_stage_after_it(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.run(1.0, 2.0)
    assert pipeline.run(1.0, 3.0) == "t1.0/s3.0"  # student section changed: the teacher is reused
    assert pipeline.builds == {"teacher": 1, "student": 2}
    assert pipeline.run(5.0, 3.0) == "t5.0/s3.0"  # teacher changed: the student is rebuilt on the new teacher
    assert pipeline.builds == {"teacher": 2, "student": 3}


def test_an_unfinished_stage_is_built_again_over_its_files_and_a_stray_directory_is_removed(tmp_path: Path) -> None:
    ledger = StageLedger(tmp_path, log=lambda _: None)
    stray = tmp_path / "teacher" / "stale.bin"
    stray.parent.mkdir(parents=True)
    stray.write_text("from an older run that no ledger describes")

    def crash(out: Path) -> None:
        assert not stray.exists()  # removed before the build
        out.mkdir(parents=True, exist_ok=True)
        (out / "checkpoint").write_text("half way")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ledger.run("teacher", {"lr": 1}, crash, load=lambda out: "loaded")
    seen = []
    resumed = StageLedger(tmp_path, log=lambda _: None).run(
        "teacher", {"lr": 1}, lambda out: seen.append((out / "checkpoint").read_text()) or "built", lambda out: "x"
    )
    assert resumed == "built" and seen == ["half way"]  # same fingerprint: resumed over its own checkpoint


def test_a_stage_cannot_start_before_its_dependency_finished(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="stage 'teacher' has not finished"):
        StageLedger(tmp_path).run("student", {}, lambda out: None, after=["teacher"])


def test_two_processes_sharing_a_run_directory_keep_each_others_finished_stages(tmp_path: Path) -> None:
    first, second = StageLedger(tmp_path, log=lambda _: None), StageLedger(tmp_path, log=lambda _: None)
    built = []

    def build(out: Path) -> str:
        built.append(out.name)
        out.mkdir(parents=True, exist_ok=True)
        return out.name

    read = lambda out: f"read {out.name}"  # noqa: E731
    first.run("task_a", {"lr": 1}, build, read)
    second.run("task_b", {"lr": 2}, build, read)  # read the ledger before task_a was written
    third = StageLedger(tmp_path, log=lambda _: None)
    assert third.run("task_a", {"lr": 1}, build, read) == "read task_a"
    assert third.run("task_b", {"lr": 2}, build, read) == "read task_b"
    assert built == ["task_a", "task_b"]


def test_a_finished_stage_records_and_logs_its_build_time(tmp_path: Path) -> None:
    logged: list[str] = []
    ledger = StageLedger(tmp_path, log=logged.append)
    ledger.run("teacher", {}, lambda out: time.sleep(0.2))
    record = json.loads((tmp_path / "stages.json").read_text())["teacher"]
    assert record["done"] and record["seconds"] >= 0.2
    assert logged[-1] == "[teacher] built in 0 s"


def test_a_sitting_that_reaches_a_stage_another_is_building_waits_and_reuses_it(tmp_path):
    import threading

    built, logs = [], []
    started = threading.Event()

    def slow_build(out):
        started.set()
        time.sleep(0.5)  # the second sitting arrives meanwhile
        out.mkdir(parents=True, exist_ok=True)
        (out / "weights").write_text("trained once")
        built.append(threading.current_thread().name)
        return "built"

    def sitting(name):
        ledger = StageLedger(tmp_path, log=logs.append)  # each sitting reads the ledger when it starts
        results[name] = ledger.run("teacher", {"lr": 1}, slow_build, load=lambda out: (out / "weights").read_text())

    results: dict[str, str] = {}
    first = threading.Thread(target=sitting, args=("first",), name="first")
    first.start()
    started.wait()
    second = threading.Thread(target=sitting, args=("second",), name="second")
    second.start()
    first.join()
    second.join()
    assert built == ["first"] and results == {"first": "built", "second": "trained once"}
    assert "[teacher] another sitting is building it: waiting" in logs
    assert "[teacher] up to date: reusing " + str(tmp_path / "teacher") in logs


def test_a_stage_another_sitting_is_building_raises_stage_busy_when_told_not_to_wait(tmp_path):
    other = StageLedger(tmp_path, log=lambda _: None)
    built = []
    with other._building("teacher"):  # another sitting is inside the stage
        ledger = StageLedger(tmp_path, log=lambda _: None)
        with pytest.raises(StageBusy, match="stage 'teacher' is being built by another sitting"):
            ledger.run("teacher", {}, built.append, wait=False)
    assert built == []
    ledger.run("teacher", {}, lambda out: built.append("free"), wait=False)  # the lock is free again
    assert built == ["free"]


class TwoSeeds(Pack):
    """One variant, seeds 0 and 1; ``train`` records the order and runs ``on_train`` after each build."""

    def __init__(self, on_train=lambda seed: None):
        self.order, self.on_train = [], on_train

    def variants(self):
        return [Variant("kd", "tiny", {"kd": 1.0}, [0, 1], kd=True)]

    def student_settings(self, variant):
        return {}

    def train(self, variant, seed, directory):
        self.order.append(seed)
        directory.mkdir(parents=True, exist_ok=True)
        self.on_train(seed)
        return torch.nn.Linear(1, 1)

    def load(self, variant, seed, directory):
        return torch.nn.Linear(1, 1)


def test_train_variants_trains_a_free_student_before_one_another_sitting_is_training(tmp_path):
    import threading

    other = StageLedger(tmp_path, log=lambda _: None)
    held = other._building("students/kd-s0")
    held.__enter__()  # another sitting is training seed 0 ...
    released = threading.Event()

    def release(seed=None):
        if not released.is_set():
            released.set()
            held.__exit__(None, None, None)

    pack = TwoSeeds(on_train=lambda seed: release() if seed == 1 else None)  # ... until seed 1 is trained here
    logs, trained = [], []
    sitting = threading.Thread(target=lambda: trained.extend(train_variants(pack, StageLedger(tmp_path, logs.append))))
    sitting.start()
    sitting.join(timeout=60)
    release()  # a sitting that waited for seed 0 instead would still be blocked: let it finish, then fail below
    sitting.join()
    assert pack.order == [1, 0]  # seed 1 first; seed 0 after the other sitting let go (it never finished it)
    assert [t.seed for t in trained] == [0, 1]  # returned in the pack's order
    assert [t.directory for t in trained] == [tmp_path / "students/kd-s0", tmp_path / "students/kd-s1"]
    assert "[students/kd-s0] another sitting is training it: coming back to it last" in logs


def test_train_variants_in_one_sitting_trains_in_order_and_reuses_on_a_rerun(tmp_path):
    pack = TwoSeeds()
    train_variants(pack, StageLedger(tmp_path, log=lambda _: None))
    train_variants(pack, StageLedger(tmp_path, log=lambda _: None))
    assert pack.order == [0, 1]
