"""The radiology pack's entry in the domain registry (``suite.domains``)."""

from __future__ import annotations

from suite.domains import Domain


def _domain() -> Domain:
    from domains.radiology.pipeline import run
    from domains.radiology.recipe import PROFILES, RadiologyRecipe

    return Domain(
        name="radiology",
        description="IU X-ray findings -> impression: MiniLM BERT2BERT teacher -> small seq2seq students",
        recipe=RadiologyRecipe,
        profiles=PROFILES,
        run=run,
        app="apps.radiology:build_app",
    )


DOMAIN = _domain()
