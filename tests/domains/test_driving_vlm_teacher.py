"""The driving pack with a VLM teacher behind an OpenAI-compatible server (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import pytest

from domains.driving.collect import CollectPlan, collect
from domains.driving.data import load
from domains.driving.recipe import DrivingRecipe
from domains.driving.teacher_data import vlm_rationales
from tests.teachers.test_vision_language_teacher import VLMServer

GOOD = "Perception: a blue car ahead.\nPrediction: it keeps its lane.\nPlanning: slow down, it is close."


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm-driving")
    return load(collect(CollectPlan(("merge",), episodes=1, seed=0), root / "data", progress=False))


def test_vlm_rationales_replace_the_experts_and_keep_it_where_the_answer_does_not_parse(data, tmp_path):
    expert_texts = [dict(row) for row in data.texts]
    # Every third frame gets an answer without the three sections: the expert's rationale must stay there.
    replies = iter(range(10_000))
    with VLMServer(reply=lambda text: GOOD if next(replies) % 3 else "no idea") as server:
        recipe = DrivingRecipe(teacher="openai-vlm", teacher_model="tiny-vlm", teacher_url=server.url)
        vlm_rationales(recipe, data, tmp_path / "store")
        asked = len(server.bodies)
    assert asked == len(data)  # one request per frame, each carrying that frame
    assert all("Scenario: merge" in body["messages"][-1]["content"][0]["text"] for body in server.bodies)
    replaced = [row for row in data.texts if row["planning"] == "slow down, it is close."]
    kept = [row for row, old in zip(data.texts, expert_texts, strict=True) if row == old]
    assert len(replaced) + len(kept) == len(data) and replaced and kept
    assert all(row["perception"] == "a blue car ahead." for row in replaced)

    # A rerun reads every answer from the teacher-output store: no request reaches the server.
    with VLMServer(reply=lambda text: None) as server:
        recipe = DrivingRecipe(teacher="openai-vlm", teacher_model="tiny-vlm", teacher_url=server.url)
        vlm_rationales(recipe, data, tmp_path / "store")
        assert server.bodies == []
