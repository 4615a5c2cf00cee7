"""Whether the champion can score the marts as they are, and whether a run trains.

A champion needs every feature it was trained on; one renamed or dropped in dbt leaves it
unable to score, and the train stage replaces it (judged on the quality bars alone).
"""

from __future__ import annotations

from flows.registry import champion_version, read_metadata
from flows.settings import Settings
from flows.transform.manifest import FEATURES_TABLE
from flows.warehouse import Warehouse, table_columns


def features_gone(settings: Settings, version: str) -> list[str]:
    """The features of model `version` that the marts no longer have."""

    with Warehouse.from_settings(settings).connect(read_only=True) as con:
        have = table_columns(con, FEATURES_TABLE)
    return [f for f in read_metadata(settings.registry, version)["features"] if f not in have]


def will_train(settings: Settings, force: bool) -> bool:
    """Whether `train_model` fits a model in this run: asked to, no champion, or a champion
    whose features left the marts."""

    champion = champion_version(settings.registry)
    return force or champion is None or bool(features_gone(settings, champion))
