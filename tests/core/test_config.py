from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from suite.config import check, load_config
from suite.errors import ConfigError
from suite.trainer import TrainerConfig


@dataclass
class KD:
    temperature: float = 2.0
    weights: dict[str, float] = field(default_factory=lambda: {"task": 0.5, "kd": 0.5})

    def __post_init__(self) -> None:
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")


@dataclass
class Recipe:
    name: str = "demo"
    kd: KD = field(default_factory=KD)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    splits: list[str] = field(default_factory=lambda: ["train"])


def write(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_defaults_yaml_and_overrides_layer_in_order(tmp_path) -> None:
    path = write(tmp_path, "kd:\n  temperature: 4\ntrainer:\n  lr: 1e-3\n  epochs: 2\n")
    recipe = load_config(Recipe, path, ["trainer.lr=3e-4", "kd.weights.kd=0.9", "splits=[train, test]"])
    assert recipe.kd.temperature == 4.0 and isinstance(recipe.kd.temperature, float)
    assert recipe.trainer.lr == pytest.approx(3e-4)
    assert recipe.trainer.epochs == 2
    assert recipe.kd.weights == {"task": 0.5, "kd": 0.9}
    assert recipe.splits == ["train", "test"]


def test_unknown_key_names_the_full_key(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^trainer\.lrr: unknown key"):
        load_config(Recipe, write(tmp_path, "trainer:\n  lrr: 0.1\n"))
    with pytest.raises(ConfigError, match=r"^kd\.temp: unknown key"):
        load_config(Recipe, None, ["kd.temp=3"])


def test_bad_values_are_one_line_errors_naming_the_key(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^trainer\.lr: must be > 0"):
        load_config(Recipe, None, ["trainer.lr=-1"])
    with pytest.raises(ConfigError, match=r"^kd\.temperature: must be > 0"):
        load_config(Recipe, None, ["kd.temperature=0"])
    with pytest.raises(ConfigError, match=r"^trainer\.epochs: expected an integer"):
        load_config(Recipe, None, ["trainer.epochs=1.5"])
    with pytest.raises(ConfigError, match=r"^trainer\.progress: expected true or false"):
        load_config(Recipe, None, ["trainer.progress=maybe"])
    with pytest.raises(ConfigError, match=r"^trainer: expected a mapping"):
        load_config(Recipe, write(tmp_path, "trainer: 3\n"))
    message = str(pytest.raises(ConfigError, load_config, Recipe, None, ["trainer.lr=abc"]).value)
    assert "\n" not in message and message.startswith("trainer.lr")


def test_yaml_never_constructs_objects(tmp_path) -> None:
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Recipe, path)


def test_missing_file_and_malformed_override(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Recipe, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(Recipe, None, ["trainer.lr"])


def test_a_mapping_given_whole_replaces_and_a_dotted_key_merges(tmp_path) -> None:
    merged = load_config(Recipe, None, ["kd.weights.kd=0.9"])
    assert merged.kd.weights == {"task": 0.5, "kd": 0.9}
    whole = load_config(Recipe, None, ["kd.weights={kd: 1.0}"])
    assert whole.kd.weights == {"kd": 1.0}  # the default task weight does not come back
    assert type(whole.kd.weights) is dict
    # a whole mapping from one layer (a profile, a file) stays whole when a later dotted key changes one entry
    yaml_file = write(tmp_path, "kd:\n  weights:\n    kd: 0.3\n")
    layered = load_config(Recipe, yaml_file, ["kd.weights={kd: 1.0, feature: 0.2}", "kd.weights.kd=0.7"])
    assert layered.kd.weights == {"kd": 0.7, "feature": 0.2}


def test_a_profile_that_lists_variants_trains_only_those() -> None:
    from suite.cli import _recipe_for
    from suite.domains import get_domain

    recipe = _recipe_for(get_domain("radiology"), "quick", {}, ["variants.fkl.divergence=rkl"], None)
    assert sorted(recipe.variants) == ["fkl", "no_kd"]
    assert recipe.variants["fkl"]["divergence"] == "rkl"


def test_a_runs_recorded_recipe_reads_back_the_same_with_mappings_whole(tmp_path) -> None:
    from suite.config import read_run_recipe, save_run_recipe

    given = load_config(Recipe, None, ["kd={temperature: 3, weights: {kd: 1.0}}", "splits=[test]", "name=run"])
    assert given.kd.weights == {"kd": 1.0}  # given whole: the default "task" weight is gone
    path = save_run_recipe(given, tmp_path / "run", "example", "distill run example --set name=run")
    assert path == tmp_path / "run" / "recipe.yaml"
    assert read_run_recipe(Recipe, tmp_path / "run") == given  # merged into the defaults, "task" would come back
    again = read_run_recipe(Recipe, tmp_path / "run", ["kd.temperature=5"])
    assert again.kd.temperature == 5.0 and again.kd.weights == {"kd": 1.0} and again.name == "run"
    assert read_run_recipe(Recipe, tmp_path / "elsewhere") is None  # a run that recorded none


def test_a_setting_the_record_lacks_gets_its_value_from_before_it_was_added_and_overrides_still_win(tmp_path) -> None:
    from suite.config import read_run_recipe

    (tmp_path / "recipe.yaml").write_text("recipe:\n  name: old\n")  # recorded before "splits" existed
    older = read_run_recipe(Recipe, tmp_path, added_later={"splits": "[train,test]", "name": "new"})
    assert older.splits == ["train", "test"] and older.name == "old"  # the record's own key is kept
    again = read_run_recipe(Recipe, tmp_path, ["splits=[dev]"], added_later={"splits": "[train,test]"})
    assert again.splits == ["dev"]


def test_a_broken_run_recipe_names_its_file(tmp_path) -> None:
    from suite.config import read_run_recipe

    (tmp_path / "recipe.yaml").write_text("domain: example\n")
    with pytest.raises(ConfigError, match=r"recipe\.yaml: no 'recipe' mapping"):
        read_run_recipe(Recipe, tmp_path)
    (tmp_path / "recipe.yaml").write_text("recipe:\n  kd:\n    temperature: -1\n")
    with pytest.raises(ConfigError, match=r"recipe\.yaml: kd\.temperature: must be > 0"):
        read_run_recipe(Recipe, tmp_path)


def test_only_true_and_false_are_booleans_so_a_choice_named_no_stays_a_string(tmp_path) -> None:
    from suite.config import parse_override, read_yaml

    assert parse_override("mixed_precision=no") == (["mixed_precision"], "no")  # YAML 1.1 read it as False
    assert parse_override("x=off")[1] == "off" and parse_override("x=yes")[1] == "yes"
    assert parse_override("progress=false")[1] is False and parse_override("progress=True")[1] is True
    assert parse_override("x=null")[1] is None and parse_override("x=3e-4")[1] == "3e-4"
    assert read_yaml(write(tmp_path, "a: no\nb: true\nc: [on, 1]\n")) == {"a": "no", "b": True, "c": ["on", 1]}


def test_the_config_loader_stays_safe_and_refuses_python_objects(tmp_path) -> None:
    from suite.config import read_yaml, safe_load

    with pytest.raises(ConfigError, match="invalid YAML"):
        read_yaml(write(tmp_path, "x: !!python/object/apply:os.system ['true']\n"))
    with pytest.raises(Exception, match="python/name"):
        safe_load("x: !!python/name:os.system\n")
