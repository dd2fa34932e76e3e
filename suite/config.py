"""Dataclass configs filled from YAML (a ``yaml.SafeLoader``) and ``--set key.path=value`` overrides.

YAML only fills dataclasses; it never names or constructs Python objects. Every config class validates itself in
``__post_init__`` through :func:`check`, so a bad value becomes a one-line :class:`ConfigError` naming the full key
(``trainer.lr: must be > 0, got -1.0``).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from suite.errors import ConfigError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, except that only true and false are booleans (as in YAML 1.2): YAML 1.1 also reads
    yes, no, on and off as booleans, so ``--set mixed_precision=no`` arrived as False and was refused."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF")


def safe_load(text: str) -> Any:
    """Parse YAML text with :class:`_Loader`. ``yaml.safe_load`` is ``yaml.load`` with ``SafeLoader``; this is the
    same call with its subclass, which keeps SafeLoader's constructor: plain data only, a Python tag is refused."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: as safe as yaml.safe_load


def check(condition: bool, key: str, message: str) -> None:
    """Raise a ConfigError for ``key`` unless ``condition`` holds. Used inside ``__post_init__``."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _prefixed(prefix: str, error: ConfigError) -> ConfigError:
    return ConfigError(f"{prefix}{error}") if prefix else error


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML value to the field's annotated type, or raise a ConfigError naming the key."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_dict(annotation, value, prefix=f"{key}.")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()} if args else value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if annotation is int:
            if not number.is_integer():
                raise ConfigError(f"{key}: expected an integer, got {value!r}")
            return int(number)
        return number
    if annotation is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if typing.get_origin(annotation) is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build ``cls`` from a plain mapping; unknown keys and bad values raise a ConfigError naming the key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {name: _coerce(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise _prefixed(prefix, error) from None


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.lr=3e-4"`` -> ``(["trainer", "lr"], 0.0003)``. The value is parsed as YAML (safely)."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected key.path=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set {text}: empty key")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads "3e-4" as a string; the dataclass coercion turns it into a float where the field wants one.
    return key.strip().split("."), value


class Whole(dict):
    """A mapping given whole (``--set variants={a: ..., b: ...}``): it replaces the mapping it lands on, defaults
    included, where a dotted key (``--set variants.a.top_k=5``) merges into it key by key."""


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, list) else value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.path=value`` applied (intermediate mappings are created); a mapping
    value is marked :class:`Whole`, so it replaces what it lands on when merged with defaults."""
    merged = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        value = Whole(value) if isinstance(value, dict) else value
        node = merged
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{'.'.join(path)}: '{part}' is not a section")
        node[path[-1]] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, mapping by mapping; a :class:`Whole` mapping in ``update`` replaces, and one in
    ``base`` stays whole (what merges into it cannot bring defaults back)."""
    merged = type(base)(base)
    for key, value in update.items():
        if isinstance(value, dict) and not isinstance(value, Whole) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls`` <- YAML file <- ``--set`` overrides, validated once at the end.

    Mappings merge key by key (``--set kd.weights.kd=0.9`` keeps the default ``task`` weight); a mapping given whole
    replaces (``--set 'variants={kd: {task: 1}}'`` trains that variant alone); other values replace.
    """
    return build_config(cls, read_yaml(path) if path else {}, overrides)


def build_config(cls: type[T], data: dict[str, Any], overrides: list[str] | None = None) -> T:
    """Like :func:`load_config`, from an already-read mapping."""
    data = apply_overrides(data, overrides or [])
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        return from_dict(cls, data)  # reports the unknown key
    return from_dict(cls, _plain(deep_merge(to_dict(cls()), data)))


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def describe_fields(config: Any, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """``(key, type, value, help)`` of every field of a config dataclass, nested sections as dotted keys."""
    rows = []
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            rows += describe_fields(value, prefix=f"{key}.")
        else:
            rows.append((key, _type_name(hints[field.name]), value, field.metadata.get("help", "")))
    return rows


# -- the recipe a run was made with ---------------------------------------------------------------------------------

RUN_RECIPE_FILE = "recipe.yaml"


def save_run_recipe(recipe: Any, directory: str | Path, domain: str, command: str) -> Path:
    """Write ``recipe`` (resolved: defaults, profile and overrides applied) to ``directory/recipe.yaml``, so what
    reads the run later (a benchmark, a second look) rebuilds the same recipe instead of being told it again."""
    path = Path(directory) / RUN_RECIPE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"domain": domain, "command": command, "recipe": to_dict(recipe)}
    path.write_text(
        "# The recipe this run was made with, written by the distill command (read back by read_run_recipe).\n"
        + yaml.safe_dump(record, sort_keys=False, allow_unicode=True, width=10_000),
        encoding="utf-8",
    )
    return path


def read_run_recipe(
    cls: type[T], directory: str | Path, overrides: list[str] | None = None, added_later: dict[str, str] | None = None
) -> T | None:
    """The recipe recorded in ``directory/recipe.yaml`` (:func:`save_run_recipe`) with ``overrides`` on top, or None
    when the run recorded none (it was made before runs recorded their recipe, or not by the distill command).

    The record is complete, so each of its mappings replaces the default one whole: a mapping the run was given whole
    (``--set 'variants={kd: ...}'``) must not get the default entries back. For the same reason a key the record lacks
    is a setting added after the run: ``added_later`` maps such settings to the value that gives what the run did
    (today's default could differ), applied before ``overrides``.
    """
    path = Path(directory) / RUN_RECIPE_FILE
    if not path.is_file():
        return None
    record = read_yaml(path)
    if not isinstance(record.get("recipe"), dict):
        raise ConfigError(f"{path}: no 'recipe' mapping; was it written by the distill command?")
    data = {key: Whole(value) if isinstance(value, dict) else value for key, value in record["recipe"].items()}
    try:
        build_config(cls, data)  # the record alone first: an error in it names the file, one in overrides does not
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    older = [f"{key}={value}" for key, value in (added_later or {}).items() if key not in record["recipe"]]
    return build_config(cls, data, [*older, *(overrides or [])])
