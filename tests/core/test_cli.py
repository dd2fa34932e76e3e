"""The CLI's one-line errors, listings and recipe discovery (the packs' runs have their own tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.cli import main


def test_unknown_domain_is_one_line_error(capsys) -> None:
    assert main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown domain 'nope'") and err.count("\n") == 1


def test_bad_override_names_the_key(capsys) -> None:
    assert main(["run", "--set", "tiny_trainer.lr=-1"]) == 2  # no domain: the education pack
    assert capsys.readouterr().err.startswith("error: tiny_trainer.lr: must be > 0")
    assert main(["run", "--set", "temprature=3"]) == 2
    assert capsys.readouterr().err.startswith("error: temprature: unknown key")
    assert main(["run", "--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


def test_train_needs_a_domain_key(tmp_path: Path, capsys) -> None:
    config = tmp_path / "recipe.yaml"
    config.write_text("alpha: 0.3\n")
    assert main(["train", str(config)]) == 2
    assert "add a top-level 'domain:' key" in capsys.readouterr().err


def test_listing_commands(capsys) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "semeval2013-sra",
        "gsm8k",
        "pubmedqa-pqal",
        "symptom2disease",
        "mtsamples",
        "iu-xray-reports",
        "bdd-x",
    ):
        assert name in out
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "minilm-l6" in out and "efficientnet-lite0" in out and "education" in out and "driving" in out


def test_recipe_lists_every_key_with_type_value_and_help(capsys) -> None:
    assert main(["recipe", "education", "--profile", "quick", "--set", "kd.temperature=4"]) == 0
    out = capsys.readouterr().out
    assert "  seeds (list[int]) = [0]" in out and "  kd.temperature (float) = 4.0" in out
    assert "  tiny_trainer.lr (float) = 0.002" in out and "peak learning rate" in out
    assert "  variants (dict[str, dict[str, float]])" in out
    assert main(["recipe", "driving"]) == 0
    assert "  weights (dict[str, float])" in capsys.readouterr().out


def test_runs_write_under_their_output_dir_unless_published() -> None:
    from suite.cli import _recipe_for
    from suite.domains import get_domain

    for name in ("education", "driving", "radiology"):
        domain = get_domain(name)
        recipe = _recipe_for(domain, "quick", {}, [], "/tmp/elsewhere")
        assert recipe.report_path.as_posix() == "/tmp/elsewhere/report"
        assert recipe.model_card_path.as_posix() == "/tmp/elsewhere/model_card"
        published = _recipe_for(domain, "full", {}, [], None, publish=True)
        assert published.report_path.as_posix() == "docs/results"
        assert published.model_card_path.as_posix() == f"models/{name}"


def test_debug_flag_shows_the_traceback() -> None:
    from suite.errors import RegistryError

    with pytest.raises(RegistryError):
        main(["--debug", "run", "nope"])


def test_shipped_configs_parse_into_recipes() -> None:
    from suite.cli import _recipe_for
    from suite.config import read_yaml
    from suite.domains import get_domain

    for path in sorted(Path(__file__).resolve().parents[2].glob("configs/*.yaml")):
        data = read_yaml(path)
        domain = get_domain(data.pop("domain"))
        recipe = _recipe_for(domain, str(data.pop("profile", "full")), data, [], None)
        assert isinstance(recipe, domain.recipe), path


def test_a_run_records_its_resolved_recipe_in_its_output_dir(monkeypatch, tmp_path: Path) -> None:
    import dataclasses

    import suite.domains
    from suite.config import read_run_recipe, read_yaml

    driving = suite.domains.get_domain("driving")
    given = []
    fake = dataclasses.replace(driving, run=lambda recipe, resume=False: given.append(recipe) or {})
    monkeypatch.setattr(suite.domains, "get_domain", lambda name: fake)
    out = tmp_path / "run"
    settings = ["expert.other_routes=known", "weights={imitation: 1.0, align: 0.2}", "variants=[imitation,align]"]
    assert main(["run", "driving", "--profile", "quick", "--output-dir", str(out), *_sets(settings)]) == 0
    recorded = read_run_recipe(driving.recipe, out)
    assert recorded == given[0] and recorded.expert.other_routes == "known" and recorded.camera == "square64"
    assert recorded.weights == {"imitation": 1.0, "align": 0.2}
    record = read_yaml(out / "recipe.yaml")
    assert record["domain"] == "driving" and record["command"].startswith("distill run driving --profile quick")
    assert "--set 'weights={imitation: 1.0, align: 0.2}'" in record["command"]  # quoted as a shell needs it


def _sets(settings: list[str]) -> list[str]:
    return [arg for setting in settings for arg in ("--set", setting)]
