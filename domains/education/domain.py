"""The education pack's entry in the domain registry (``suite.domains``)."""

from __future__ import annotations

from suite.domains import Domain


def _domain() -> Domain:
    from domains.education.pipeline import run
    from domains.education.recipe import PROFILES, EducationRecipe

    return Domain(
        name="education",
        description="answer scoring + solution verifier: MiniLM cross-encoder -> tiny and 2-layer students",
        recipe=EducationRecipe,
        profiles=PROFILES,
        run=run,
        app="apps.education:build_app",
    )


DOMAIN = _domain()
