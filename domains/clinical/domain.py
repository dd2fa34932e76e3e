"""The clinical pack's entry in the domain registry (``suite.domains``)."""

from __future__ import annotations

from suite.domains import Domain


def _domain() -> Domain:
    from domains.clinical.pipeline import run
    from domains.clinical.recipe import PROFILES, ClinicalRecipe

    return Domain(
        name="clinical",
        description="PubMedQA, Symptom2Disease, MTSamples: MiniLM teacher -> students that answer and explain",
        recipe=ClinicalRecipe,
        profiles=PROFILES,
        run=run,
        app="apps.clinical:build_app",
    )


DOMAIN = _domain()
