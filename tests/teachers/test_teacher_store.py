"""The teacher-output store: zero teacher calls on reruns, crash safety, memory-mapped shard reads."""

from __future__ import annotations

import pickle

import pytest
import torch

import suite.teachers.store as store_module
from suite.errors import TeacherError
from suite.teachers import (
    StoredTeacher,
    TeacherBatchError,
    TeacherOutput,
    TeacherOutputStore,
    list_teachers,
    store_key,
)


class CountingTeacher:
    """Answers deterministically from the input; counts calls and inputs; can fail on a given call."""

    teacher_id = "fake-teacher@1"

    def __init__(self, fail_on_call: int | None = None):
        self.calls = 0
        self.asked: list[str] = []
        self.fail_on_call = fail_on_call

    def settings(self) -> dict:
        return {"temperature": 0.0}

    def answer(self, inputs: list) -> list[TeacherOutput]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("teacher process died")
        self.asked.extend(inputs)
        outputs = []
        for text in inputs:
            seed = sum(map(ord, text))
            gen = torch.Generator().manual_seed(seed)
            outputs.append(
                TeacherOutput(
                    text=text.upper(),
                    label=seed % 3,
                    logits=torch.randn(3, generator=gen),
                    topk_ids=torch.randint(0, 50, (4, 2), generator=gen),
                    topk_logprobs=torch.randn(4, 2, generator=gen).log_softmax(-1),
                    meta={"length": len(text)},
                )
            )
        return outputs


def assert_same(a: TeacherOutput, b: TeacherOutput) -> None:
    assert (a.text, a.label, a.meta) == (b.text, b.label, b.meta)
    for name in ("logits", "topk_ids", "topk_logprobs", "embedding"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), name


INPUTS = [f"prompt number {i}" for i in range(10)]


def test_second_run_and_reopened_store_make_no_teacher_calls(tmp_path):
    teacher = CountingTeacher()
    first = TeacherOutputStore(tmp_path).run(teacher, INPUTS, batch_size=4, progress=False)
    assert teacher.calls == 3 and sorted(teacher.asked) == sorted(INPUTS)
    direct = CountingTeacher().answer(INPUTS)
    for got, want in zip(first, direct, strict=True):
        assert_same(got, want)

    store = TeacherOutputStore(tmp_path)
    again = store.run(teacher, INPUTS, batch_size=4, progress=False)
    assert teacher.calls == 3
    reopened = CountingTeacher()
    third = TeacherOutputStore(tmp_path).run(reopened, INPUTS, batch_size=4, progress=False)
    assert reopened.calls == 0
    for a, b, c in zip(first, again, third, strict=True):
        assert_same(a, b)
        assert_same(a, c)


def test_duplicates_are_asked_once_and_returned_in_input_order(tmp_path):
    teacher = CountingTeacher()
    inputs = ["b", "a", "b", "c", "a", "b"]
    outputs = TeacherOutputStore(tmp_path).run(teacher, inputs, batch_size=2, progress=False)
    assert sorted(teacher.asked) == ["a", "b", "c"]
    assert [o.text for o in outputs] == ["B", "A", "B", "C", "A", "B"]


def test_crash_on_third_batch_keeps_first_two_batches(tmp_path):
    crashing = CountingTeacher(fail_on_call=3)
    with pytest.raises(RuntimeError, match="teacher process died"):
        TeacherOutputStore(tmp_path).run(crashing, INPUTS, batch_size=2, progress=False)
    store = TeacherOutputStore(tmp_path)
    assert len(store) == 4
    assert set(store.keys()) == {store_key(crashing.teacher_id, x, crashing.settings()) for x in INPUTS[:4]}

    rerun = CountingTeacher()
    outputs = store.run(rerun, INPUTS, batch_size=2, progress=False)
    assert rerun.asked == INPUTS[4:]
    assert [o.text for o in outputs] == [x.upper() for x in INPUTS]


def test_partial_batch_failure_stores_the_answered_part(tmp_path):
    class HalfFailing(CountingTeacher):
        def answer(self, inputs):
            outputs = super().answer(inputs)
            answered = {i: o for i, o in enumerate(outputs) if "3" not in inputs[i]}
            failures = {i: "HTTP 500 after 5 attempts" for i in range(len(inputs)) if i not in answered}
            if failures:
                raise TeacherBatchError(answered, failures, len(inputs))
            return outputs

    store = TeacherOutputStore(tmp_path)
    with pytest.raises(TeacherError, match=r"input 3: HTTP 500") as info:
        store.run(HalfFailing(), INPUTS, batch_size=4, progress=False)
    assert "prompt number" not in str(info.value)
    assert len(store) == 3  # the first batch minus the failed input; the job stopped there
    assert store_key(CountingTeacher.teacher_id, INPUTS[3], {"temperature": 0.0}) not in store


def test_store_key_is_canonical_and_sensitive_to_every_part():
    base = store_key("t", {"text": "a", "text_pair": "b"}, {"k": 1, "m": 2})
    assert base == store_key("t", {"text_pair": "b", "text": "a"}, {"m": 2, "k": 1})
    assert len({base, store_key("u", {"text": "a", "text_pair": "b"}, {"k": 1, "m": 2})}) == 2
    assert base != store_key("t", {"text": "a", "text_pair": "c"}, {"k": 1, "m": 2})
    assert base != store_key("t", {"text": "a", "text_pair": "b"}, {"k": 1, "m": 3})
    image = torch.arange(12.0).reshape(3, 2, 2)
    assert store_key("t", image, {}) == store_key("t", image.clone(), {})
    assert store_key("t", image, {}) != store_key("t", image + 1, {})


def test_reads_are_memory_mapped_shard_by_shard(tmp_path, monkeypatch):
    writer = TeacherOutputStore(tmp_path)
    expected = {}
    for shard in range(6):
        items = [(f"k{shard}-{i}", TeacherOutput(embedding=torch.randn(8), meta={"s": shard})) for i in range(3)]
        writer.put_many(items)
        expected.update(items)
    writer.put_many([("text-only", TeacherOutput(text="no tensors", label=2))])
    writer.close()
    del writer
    assert len(list(tmp_path.glob("shard-*.safetensors"))) == 6  # one shard per call; none for tensor-free outputs

    opened = []

    def counting_safe_open(path, framework):
        opened.append(path)
        return safe_open(path, framework=framework)

    safe_open = store_module.safe_open
    monkeypatch.setattr(store_module, "safe_open", counting_safe_open)
    reader = TeacherOutputStore(tmp_path, max_open_shards=2)
    for key, want in expected.items():
        assert_same(reader.get(key), want)
        assert len(reader._handles) <= 2
    assert len(opened) == 6  # each shard opened once while its keys are read in order
    assert reader.get("text-only").text == "no tensors"
    with pytest.raises(KeyError):
        reader.get("absent")
    clone = pickle.loads(pickle.dumps(reader))  # what a DataLoader worker receives
    assert_same(clone.get("k5-2"), expected["k5-2"])


def test_crash_between_shard_write_and_index_leaves_a_clean_index(tmp_path, monkeypatch):
    store = TeacherOutputStore(tmp_path)
    store.put_many([("kept", TeacherOutput(logits=torch.ones(2)))])
    (tmp_path / ".shard-000009.safetensors.123.tmp").write_bytes(b"half a shard")  # a crash during a write

    class Boom(Exception):
        pass

    def crash(self, shard, rows):
        raise Boom

    monkeypatch.setattr(TeacherOutputStore, "_index", crash)
    with pytest.raises(Boom):
        store.put_many([("lost", TeacherOutput(logits=torch.zeros(2)))])
    monkeypatch.undo()

    reopened = TeacherOutputStore(tmp_path)
    assert reopened.keys() == ["kept"] and "lost" not in reopened
    reopened.put_many([("next", TeacherOutput(logits=torch.full((2,), 3.0)))])
    assert torch.equal(reopened.get("kept").logits, torch.ones(2))
    assert torch.equal(reopened.get("next").logits, torch.full((2,), 3.0))
    assert len(list(tmp_path.glob("shard-*.safetensors"))) == 3  # kept, orphan, next: the orphan is never reused


def test_stored_teacher_answers_only_from_the_store(tmp_path):
    store = TeacherOutputStore(tmp_path)
    live = CountingTeacher()
    store.run(live, INPUTS[:3], progress=False)
    stored = StoredTeacher(store, live.teacher_id, live.settings())
    assert [o.text for o in stored.answer(INPUTS[:3])] == [x.upper() for x in INPUTS[:3]]
    assert [o.text for o in store.run(stored, INPUTS[:3], progress=False)] == [x.upper() for x in INPUTS[:3]]
    with pytest.raises(TeacherError, match="input 1"):
        stored.answer([INPUTS[0], INPUTS[5]])


def test_registry_lists_both_backends():
    assert list_teachers() == ["hf", "hf-vlm", "openai", "openai-vlm"]
