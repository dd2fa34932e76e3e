"""The driving pack's entry in the domain registry (``suite.domains``)."""

from __future__ import annotations

from suite.domains import Domain


def _domain() -> Domain:
    from domains.driving.pipeline import run
    from domains.driving.recipe import PROFILES, DrivingRecipe

    return Domain(
        name="driving",
        description="highway-env: privileged expert (or VLM) rationales -> pixel planner with reasoning distillation",
        recipe=DrivingRecipe,
        profiles=PROFILES,
        run=run,
        app="apps.driving:build_app",
    )


DOMAIN = _domain()
