"""The student registry: every name imports, duplicates and bad arguments are one-line errors."""

from __future__ import annotations

import pytest

from suite.errors import ConfigError, RegistryError
from suite.students import STUDENTS, build_student, list_students


def test_every_registered_student_resolves_to_a_callable():
    expected = {"tiny-text", "tiny-text-arch", "minilm-truncated", "minilm-classifier", "hf-classifier",
                "tiny-convnet", "efficientnet-lite0", "pixel-planner", "seq2seq", "causal-lm", "minilm-bert2bert",
                "hf-generator", "rationale-seq2seq"}  # fmt: skip
    assert set(list_students()) == expected
    for name, description in list_students().items():
        assert callable(STUDENTS.get(name)) and description


def test_registering_an_existing_name_again_is_an_error():
    target_before = STUDENTS.get("tiny-text")
    with pytest.raises(RegistryError, match="registered twice"):
        STUDENTS.register("tiny-text", "suite.students.vision:TinyConvNet")
    assert STUDENTS.get("tiny-text") is target_before


def test_unknown_student_lists_the_known_names():
    with pytest.raises(RegistryError, match="tiny-convnet"):
        build_student("tiny-txt", num_labels=2)


def test_bad_arguments_name_the_student():
    with pytest.raises(ConfigError, match="student 'tiny-convnet'.*num_classes"):
        build_student("tiny-convnet", width=8)
    with pytest.raises(ConfigError, match="student 'tiny-convnet'"):
        build_student("tiny-convnet", num_classes=3, depth=4)


def test_build_student_passes_arguments_through():
    model = build_student("tiny-convnet", num_classes=3, in_ch=1, width=4)
    assert model.head.out_features == 3 and model.backbone[0][0].in_channels == 1
