"""The exported directory (contract shared with suite/bench and the apps) and its torch-free runtime."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from tokenizers import Tokenizer

from suite.errors import ConfigError
from suite.export import ExportIntegrityError, ExportParityError, export_student, load_exported, vision_spec
from suite.export.package import load_torch_student
from suite.export.runtime import ExportedTextClassifier, ExportedVision
from suite.export.spec import text_classifier_spec
from tests.export.tiny import CORPUS, LABELS, FrozenBatch, text_batch

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["heat flows from warm objects", "water", "the cell produces energy by respiration in the mitochondria"]


def read_spec(out: Path) -> dict:
    return json.loads((out / "spec.json").read_text())


def torch_probabilities(model, tokenizer, texts: list[str]) -> np.ndarray:
    with torch.no_grad():
        return model(**text_batch(tokenizer, texts))["logits"].softmax(-1).numpy()


def test_spec_json_follows_the_contract(exported_text):
    spec = read_spec(exported_text)
    assert spec["family"] == "text-classifier" and spec["task"] == "text-classification"
    assert spec["inputs"] == [
        {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]},
    ]
    assert spec["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]}]
    assert spec["opset"] == 17 and spec["ir_version"] == onnx.load(str(exported_text / "model.onnx")).ir_version
    assert spec["labels"] == LABELS and spec["max_length"] == 32 and spec["image_size"] is None
    assert spec["torch"] == {
        "student": "tiny-text",
        "kwargs": {
            "num_labels": 3,
            "dim": 16,
            "layers": 2,
            "heads": 2,
            "ffn": 32,
            "dropout": 0.0,
            "tokenizer": "tokenizer",
        },
        "weights": "student.safetensors",
    }
    assert spec["generation"] is None
    assert set(spec["parity"]) == {"fp32", "int8", "fp16"}
    for variant, entry in spec["parity"].items():
        assert set(entry) == {"max_abs_diff", "argmax_agreement", "tolerance", "metric_drop"}
        assert entry["max_abs_diff"] <= entry["tolerance"]
        assert (entry["metric_drop"] is None) == (variant == "fp32")
    assert json.loads((exported_text / "metrics.json").read_text()) == {"accuracy": 0.5}


def test_every_file_is_listed_with_its_sha256(exported_text):
    files = read_spec(exported_text)["files"]
    on_disk = {p.relative_to(exported_text).as_posix() for p in exported_text.rglob("*") if p.is_file()}
    assert set(files) == on_disk - {"spec.json"}
    expected = {"model.onnx", "model.int8.onnx", "model.fp16.onnx", "tokenizer/tokenizer.json", "README.md"}
    assert expected | {"metrics.json", "student.safetensors"} <= set(files)
    for name, digest in files.items():
        assert hashlib.sha256((exported_text / name).read_bytes()).hexdigest() == digest


def test_model_card_has_front_matter_and_says_not_measured_for_missing_fields(exported_text):
    card = (exported_text / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "license: apache-2.0" in front and "- scientsbank" in front and "- onnx" in front
    assert "# tiny-scorer" in body and "Scoring short science answers in tests." in body
    for section in ("## Latency", "## Retention", "## Limitations", "## Training data"):
        assert body.split(section, 1)[1].split("\n##", 1)[0].strip().startswith("not measured"), section
    assert "License of the training data: not measured" in body
    assert "| int8 |" in body and "| fp16 |" in body  # parity measured by the export is reported


def test_saved_tokenizer_loads_with_tokenizers_alone(exported_text, tokenizer):
    saved = Tokenizer.from_file(str(exported_text / "tokenizer" / "tokenizer.json"))
    assert saved.encode(CORPUS[0]).ids == tokenizer(CORPUS[0])["input_ids"]


def test_runtime_predicts_the_torch_probabilities(exported_text, text_model, tokenizer):
    runtime = load_exported(exported_text)
    assert isinstance(runtime, ExportedTextClassifier) and runtime.labels == LABELS
    expected = torch_probabilities(text_model, tokenizer, TEXTS)
    np.testing.assert_allclose(runtime.predict_proba(TEXTS), expected, atol=1e-5)
    assert runtime.predict(TEXTS) == [LABELS[i] for i in expected.argmax(-1)]
    for variant in ("int8", "fp16"):  # the reduced-precision files load and stay close
        np.testing.assert_allclose(
            load_exported(exported_text, variant=variant).predict_proba(TEXTS), expected, atol=0.05
        )


def test_runtime_threads_set_the_sessions_and_keep_the_probabilities(exported_text):
    default = load_exported(exported_text)
    one = load_exported(exported_text, threads=1)
    assert one.model.get_session_options().intra_op_num_threads == 1
    assert default.model.get_session_options().intra_op_num_threads == 0  # onnxruntime's own choice
    np.testing.assert_allclose(one.predict_proba(TEXTS), default.predict_proba(TEXTS), atol=1e-6)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            load_exported(exported_text, threads=bad)


def test_runtime_truncates_to_max_length_like_the_hf_tokenizer(exported_text, text_model, tokenizer):
    runtime = load_exported(exported_text, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert "CPUExecutionProvider" in runtime.providers
    long_text = " ".join(CORPUS)
    assert len(tokenizer(long_text)["input_ids"]) > 32
    assert runtime.encode([long_text])["input_ids"].shape == (1, 32)
    with torch.no_grad():
        batch = tokenizer([long_text], truncation=True, max_length=32, return_tensors="pt")
        expected = text_model(**batch)["logits"].softmax(-1).numpy()
    np.testing.assert_allclose(runtime.predict_proba([long_text]), expected, atol=1e-5)


def test_torch_student_rebuilds_from_the_directory(exported_text, text_model, tokenizer):
    rebuilt = load_torch_student(exported_text)
    batch = text_batch(tokenizer, TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(**batch)["logits"], text_model(**batch)["logits"])


def test_vision_directory_and_runtime(exported_vision, vision_model, vision_inputs):
    spec = read_spec(exported_vision)
    assert spec["image_size"] == [3, 32, 32] and spec["labels"] == [f"LABEL_{i}" for i in range(4)]
    assert spec["inputs"] == [{"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, 32, 32]}]
    assert "tokenizer/tokenizer.json" not in spec["files"]
    runtime = load_exported(exported_vision)
    assert isinstance(runtime, ExportedVision)
    pixels = vision_inputs[1][1]["pixel_values"]
    with torch.no_grad():
        expected = vision_model(pixels)["logits"].softmax(-1).numpy()
    np.testing.assert_allclose(runtime.predict_proba(pixels.numpy()), expected, atol=1e-5)
    card = (exported_vision / "README.md").read_text()
    assert "## Intended use\nnot measured" in card and "license:" not in card


def test_a_tampered_model_file_is_refused_on_load(exported_text, tmp_path):
    copy = shutil.copytree(exported_text, tmp_path / "copy")
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ExportIntegrityError, match="model.onnx: sha256 .* does not match spec.json"):
        load_exported(copy)
    load_exported(copy, variant="int8")  # the untouched files still load


def test_a_tampered_tokenizer_is_refused_on_load(exported_text, tmp_path):
    copy = shutil.copytree(exported_text, tmp_path / "copy")
    path = copy / "tokenizer" / "tokenizer.json"
    path.write_text(path.read_text().replace('"[UNK]"', '"[unk]"', 1))
    with pytest.raises(ExportIntegrityError, match="tokenizer.json: sha256"):
        load_exported(copy)


def test_export_refuses_a_non_empty_directory_and_a_text_model_without_tokenizer(
    exported_text, text_model, text_inputs
):
    from suite.export import text_classifier_spec

    example, heldout = text_inputs
    with pytest.raises(ConfigError, match="not empty"):
        export_student(text_model, text_classifier_spec(3, 32), example, heldout, exported_text, tokenizer=object())
    with pytest.raises(ConfigError, match="needs its tokenizer"):
        export_student(text_model, text_classifier_spec(3, 32), example, heldout, exported_text.parent / "new")


def test_a_failed_parity_check_leaves_no_spec_json(tmp_path):
    model, out = FrozenBatch().eval(), tmp_path / "frozen"
    heldout = [{"pixel_values": torch.randn(3, 3, 8, 8)}]
    with pytest.raises(ExportParityError):
        export_student(model, vision_spec(8), {"pixel_values": torch.randn(2, 3, 8, 8)}, heldout, out)
    assert (out / "model.onnx").exists() and not (out / "spec.json").exists()
    with pytest.raises(ExportIntegrityError, match="no spec.json"):
        load_exported(out)


def test_the_metric_gate_drops_a_failing_variant_and_records_why(tmp_path, text_model, tokenizer, text_inputs):
    example, heldout = text_inputs
    calls = []

    def eval_fn(run) -> float:  # fp32 first, then the variant: report a 5-point drop for the variant
        calls.append(run)
        return 0.9 if len(calls) % 2 else 0.85

    kwargs = dict(tokenizer=tokenizer, int8=True, eval_fn=eval_fn, max_metric_drop=0.01)
    with pytest.raises(ExportParityError, match="drops by 0.05"):
        export_student(text_model, text_classifier_spec(LABELS, 32), example, heldout, tmp_path / "strict", **kwargs)
    out = export_student(text_model, text_classifier_spec(LABELS, 32), example, heldout, tmp_path / "gated",
                         drop_failing_variants=True, **kwargs)  # fmt: skip
    spec = read_spec(out)
    assert set(spec["parity"]) == {"fp32"} and "drops by 0.05" in spec["rejected"]["int8"]
    assert not (out / "model.int8.onnx").exists() and "model.int8.onnx" not in spec["files"]
    assert load_exported(out).predict_proba(["water"]).shape == (1, 3)


CHILD = """
import json, sys
sys.modules["torch"] = None  # any `import torch` from here on raises ImportError
try:
    import torch
    blocked = False
except ImportError:
    blocked = True
import suite.export
from suite.export.runtime import load_exported
model = load_exported(sys.argv[1])
texts = json.loads(sys.argv[2])
print(json.dumps({
    "blocked": blocked,
    "probabilities": model.predict_proba(texts).tolist(),
    "labels": model.labels,
    "heavy": sorted(m for m in ("transformers", "safetensors") if m in sys.modules),
}))
"""


def test_runtime_works_in_a_process_where_torch_cannot_be_imported(exported_text, text_model, tokenizer):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(exported_text), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["blocked"] is True and child["heavy"] == [] and child["labels"] == LABELS
    expected = torch_probabilities(text_model, tokenizer, TEXTS)
    np.testing.assert_allclose(np.array(child["probabilities"]), expected, atol=1e-4)
