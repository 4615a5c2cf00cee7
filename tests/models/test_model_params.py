"""models/params.yaml loads into a valid, leak-free Params."""

from __future__ import annotations

import math
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from models.params import DEFAULT_PARAMS_PATH, Params, load_params
from models.reasons import phrase

BOOLEAN_FEATURES = {"is_top_tier", "is_promoter_90d", "is_detractor_90d", "is_monthly_term"}
PROJECT = Path(__file__).resolve().parents[2]


def _raw() -> dict:
    return yaml.safe_load(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8"))


def test_default_params_load() -> None:
    params = load_params()
    assert params.targets == {
        "expansion": "label_expansion",
        "upsell": "label_upsell",
        "cross_sell": "label_cross_sell",
    }
    assert params.label_horizon_days == 90
    assert params.backtest.n_cutoffs == 3
    booster = params.lightgbm.booster_params()
    assert booster["objective"] == "binary"
    assert booster["deterministic"] is True
    assert booster["num_threads"] == 2
    assert "seed" in booster


def test_every_feature_has_a_reason_phrase() -> None:
    params = load_params()
    assert set(params.features.all) <= set(params.reasons)


def test_reason_groups_and_actionability() -> None:
    reasons = load_params().reasons
    limits = {f for f, t in reasons.items() if t.group == "plan_limits"}
    assert {"max_limit_utilization", "per_unit_limit_utilization", "core_quantity"} <= limits
    assert {reasons[f].group for f in ("is_monthly_term", "core_term_months")} == {"term"}
    assert reasons["months_to_renewal"].group == reasons["days_to_renewal"].group
    nps = {"nps_latest", "nps_previous", "days_since_nps", "is_promoter_90d", "is_detractor_90d"}
    assert {reasons[f].group for f in nps} == {"nps"}
    hidden = {"industry", "country", "billing_currency", "segment", "days_since_nps"}
    hidden |= {"tenure_days", "nps_previous", "core_quantity", "core_billing_period_months"}
    hidden |= {"core_pricing_model", "binding_limit_metric"}
    # a limit reads under its own metric (<metric>__utilization), which names it
    hidden |= {"max_limit_utilization", "per_unit_limit_utilization"}
    assert not any(reasons[f].actionable for f in hidden)
    for group in {t.group for t in reasons.values()} - {"firmographics", "tenure", "plan_limits"}:
        assert any(t.actionable for t in reasons.values() if t.group == group), group


def test_every_phrase_formats_for_any_value(snapshots: pd.DataFrame, params: Params) -> None:
    """params.yaml's features and the test business's usage features."""
    row = snapshots.iloc[0].to_dict()
    for feature in params.features.all:
        template = params.reasons[feature]
        values: list[object] = ["enterprise"] if feature in params.features.categorical else []
        values += [0.42, 0.0, math.nan]
        for value in values:
            text = phrase(template, value, row)
            if text is not None:
                assert "{" not in text and not re.search(r"\bnan\b", text.lower()), text
        fields = {f for _, f, _, _ in string.Formatter().parse(template.text) if f}
        if feature not in BOOLEAN_FEATURES:
            assert fields, f"reason for {feature} should show the value: {template.text!r}"


def test_no_usage_metric_is_named_in_the_model_code() -> None:
    """Usage features come from the declaration (config/business.yml), so neither params.yaml
    nor any file under models/ names a declared metric, and no listed feature is one."""
    from models.business import load_business

    business = load_business(PROJECT / "config" / "business.yml")
    assert not [f for f in load_params().features.all if "__" in f]
    files = [p for p in (PROJECT / "models").rglob("*") if p.suffix in {".py", ".yaml", ".html"}]
    assert DEFAULT_PARAMS_PATH in files
    for path in files:
        text = path.read_text(encoding="utf-8")
        named = [m for m in business.metric_names if re.search(rf"\b{m}\b", text)]
        assert not named, f"{path.relative_to(PROJECT)} names usage metric(s) {named}"


def test_label_as_feature_is_rejected() -> None:
    raw = _raw()
    raw["features"]["numeric"].append("label_upsell")
    raw["reasons"]["label_upsell"] = {"group": "labels", "text": "{value}"}
    with pytest.raises(ValueError, match="leakage"):
        Params.model_validate(raw)


def test_feature_without_phrase_is_rejected() -> None:
    raw = _raw()
    del raw["reasons"]["per_unit_limit_utilization"]
    with pytest.raises(ValueError, match="per_unit_limit_utilization"):
        Params.model_validate(raw)


def test_reason_without_group_is_rejected() -> None:
    raw = _raw()
    del raw["reasons"]["max_limit_utilization"]["group"]
    with pytest.raises(ValueError, match=r"(?s)max_limit_utilization.*group"):
        Params.model_validate(raw)
    raw["reasons"]["max_limit_utilization"]["group"] = "Plan limit"
    with pytest.raises(ValueError, match=r"(?s)max_limit_utilization.*group"):
        Params.model_validate(raw)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    raw = _raw()
    raw["lightgbm"]["num_leafs"] = 7
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ValueError, match=r"(?s)params\.yaml.*num_leafs"):
        load_params(path)


def test_derived_and_monotone_features_are_validated() -> None:
    raw = _raw()
    raw["features"]["derived"] = ["no_such_feature"]
    with pytest.raises(ValueError, match="no_such_feature"):
        Params.model_validate(raw)
    raw = _raw()
    raw["lightgbm"]["monotone_constraints"] = {"segment": 1}
    with pytest.raises(ValueError, match="monotone_constraints"):
        Params.model_validate(raw)
    raw["lightgbm"]["monotone_constraints"] = {"per_unit_limit_utilization": 2}
    with pytest.raises(ValueError, match="per_unit_limit_utilization"):
        Params.model_validate(raw)
    raw["lightgbm"]["monotone_constraints"] = {"per_unit_limit_utilization": 1}
    params = Params.model_validate(raw)
    vector = params.lightgbm.monotone_vector(params.features.all)
    assert vector[params.features.all.index("per_unit_limit_utilization")] == 1
    assert sum(map(abs, vector)) == 1


def test_shipped_business_rules() -> None:
    params = load_params()
    tiers = params.touch_tiers.tiers
    assert [t.name for t in tiers] == ["high_touch", "low_touch"]
    assert all(t.capacity is not None for t in tiers)
    assert any(r.reason.startswith("contacted in the last") for r in params.suppression)
    assert params.acceptance.max_ece == 0.03 and params.acceptance.min_oracle_auc_ratio == 0.95


def test_min_data_in_leaf_is_capped_by_the_share_of_training_rows() -> None:
    lgbm = load_params().lightgbm
    assert (lgbm.min_data_in_leaf, lgbm.min_data_in_leaf_share) == (200, 0.02)
    assert lgbm.leaf_rows(100_000) == 200  # large projects: the tuned setting
    assert lgbm.leaf_rows(1_000) == 20  # small ones can still split
    assert lgbm.leaf_rows(10) == 1
    assert lgbm.model_copy(update={"min_data_in_leaf_share": None}).leaf_rows(1_000) == 200


def test_small_project_trees_split() -> None:
    """With the shipped settings a 300-row fit learns something (200 rows a leaf: no split)."""
    from models.booster import fit_booster

    params = load_params()
    rng = np.random.default_rng(0)
    X = pd.DataFrame({c: rng.normal(size=500) for c in params.features.numeric})
    for c in params.features.categorical:
        X[c] = pd.Categorical(["a"] * len(X))
    signal = X["per_unit_limit_utilization"].to_numpy()
    y = (signal + rng.normal(scale=0.5, size=len(X)) > 1.3).astype(np.int64)
    booster, _ = fit_booster(X[:300], y[:300], X[300:], y[300:], params)
    assert booster.num_trees() > 0
    scores = booster.predict(X[300:])
    assert np.corrcoef(scores, signal[300:])[0, 1] > 0.5


def test_params_path_setting(tmp_path: Path) -> None:
    from flows.settings import Settings
    from flows.transform.manifest import model_params

    raw = _raw()
    raw["quality"]["min_roc_auc"] = 0.55
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert model_params(Settings(home=tmp_path)).quality.min_roc_auc == 0.60
    assert model_params(Settings(home=tmp_path, params_path=path)).quality.min_roc_auc == 0.55


def test_params_saved_with_the_old_usd_tier_keys_still_load() -> None:
    """A model saved before the money columns lost `_usd` keeps min_mrr_usd /
    min_expected_mrr_usd in its params: they load as min_mrr / min_expected_mrr."""
    current = load_params()
    saved = current.model_dump(mode="json")
    for tier in saved["touch_tiers"]["tiers"]:
        tier["min_mrr_usd"] = tier.pop("min_mrr")
        tier["min_expected_mrr_usd"] = tier.pop("min_expected_mrr")
    assert Params.model_validate(saved) == current
    both = current.model_dump(mode="json")
    both["touch_tiers"]["tiers"][0]["min_mrr_usd"] = 1.0
    with pytest.raises(ValueError, match="min_mrr_usd is the old name of min_mrr"):
        Params.model_validate(both)
