"""The domain registry: what ``distill run DOMAIN`` and ``distill app DOMAIN`` accept.

A domain entry bundles a recipe dataclass, named profiles (lists of ``key=value`` overrides) and a ``run(recipe)``
function. Packs under ``domains/`` add themselves here, in this one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from suite.registry import Registry


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    recipe: type
    profiles: dict[str, list[str]]
    run: Callable[..., dict[str, Any]]  # run(recipe, resume=False) -> results
    app: str = ""  # "module:function" building the Gradio app, empty when the domain has none


DOMAINS = Registry("domain")
DOMAINS.register(
    "education", "domains.education.domain:DOMAIN", help="answer scoring and solution verification (pack)"
)
DOMAINS.register("driving", "domains.driving.domain:DOMAIN", help="VLM reasoning -> real-time pixel planner (pack)")
DOMAINS.register(
    "radiology", "domains.radiology.domain:DOMAIN", help="findings -> impression: BERT2BERT -> small seq2seq (pack)"
)
DOMAINS.register(
    "clinical", "domains.clinical.domain:DOMAIN", help="answer + rationale students at data budgets (pack)"
)


def list_domains() -> list[str]:
    return DOMAINS.names()


def get_domain(name: str) -> Domain:
    return DOMAINS.get(name)
