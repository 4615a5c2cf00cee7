"""The limit of a scoring run: the least work that gives every active account a score.

One DuckDB query computes the champion's features for all accounts at `as_of` straight from
the raw tables the loader wrote (`raw.*` in the warehouse; not through dbt's staging,
intermediate or marts), LightGBM's `predict` (the champion's boosters and calibrators, via
`TrainedModel.predict_proba`) scores them, and the scores are written to a DuckDB table. Timed
alone, in its own process, on the same data the pipeline just scored.

The query returns exactly the columns the champion reads (its numeric and categorical
features and the inputs of its derived ones), against marts.account_features:
* the usage features `<metric>__<stat>`: SQL generated from the declaration the loader wrote
  (raw.config__usage_metrics) and the champion's feature names; one long relation per
  (account, declared metric) with dbt's window definitions (account_metric_snapshots), the
  effective limits of raw.billing__plan_limits (a held core plan's row, plus add-ons;
  per_unit rows x quantity) and the utilisation capped at dbt's var utilization_cap, then
  pivoted to one column per feature. No metric is named here;
* exactly as dbt defines them: the limit pressure over all metrics (max_limit_utilization,
  binding_limit_metric, per_unit_limit_utilization), contracts (MRR and MRR 90 days ago in
  the reporting currency at the rates of each version's valid_from month, from
  raw.billing__exchange_rates else the seed fx_rates.csv; products, core tier, top tier,
  core quantity, pricing model, term, billing period, days and months to renewal, tenure),
  tickets, NPS, activities, invoices, opportunities, segment;
* the MRR movements as int_account_product_states_compared, int_expansion_events_classified
  and int_account_movements_snapshotted define them: every instant an account's subscription
  versions start or end, each product's state right before and right after it (versions,
  MRR, seats, highest tier), classified (new, reactivation, cross_sell, churn, contraction,
  upsell, price_change); days_since_last_expansion (upsell or cross-sell that added MRR) and
  days_since_last_contraction from the latest before the end of as_of;
* the companions as int_product_companions_measured and int_account_companions_snapshotted
  define them: product-pair support, confidence and lift over the holdings of every account
  at as_of, dbt's vars companion_min_support / companion_min_pair_accounts /
  companion_min_lift (dbt_project.yml), then per account the usual companions not held
  (companion_products_not_held) and the most likely next product (top_companion_product_*).
No feature is filled or approximated: `agreement()` measures, outside the timing, how often
each feature equals the mart's value (>= 99.9% of active accounts is "exact").
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import yaml

from bench.limit_sql import features_sql
from flows.settings import PROJECT_DIR
from models.params import Params

# dbt vars the query reads from dbt_project.yml (the pipeline passes none of them on the
# command line), as the query parameters of the same name.
DBT_VARS = (
    "utilization_cap",
    "companion_min_support",
    "companion_min_pair_accounts",
    "companion_min_lift",
)
DBT_PROJECT_FILE = PROJECT_DIR / "dbt_project" / "dbt_project.yml"


def dbt_vars(project_file: Path = DBT_PROJECT_FILE) -> dict[str, float]:
    """dbt's vars in DBT_VARS as dbt_project.yml sets them (the pipeline does not override
    them): the query's parameters of the same names."""
    project = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    return {name: float(project["vars"][name]) for name in DBT_VARS}


def model_columns(params: Params) -> list[str]:
    """The snapshot columns a model reads: its numeric and categorical features and the
    inputs of its derived ones, in model order, each once."""
    from models.derived import DERIVED_FEATURES

    derived_inputs = [c for d in params.features.derived for c in DERIVED_FEATURES[d].sources]
    columns = [*params.features.numeric, *params.features.categorical, *derived_inputs]
    return list(dict.fromkeys(columns))


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    rel = con.sql(sql, params=params)
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    frame: pd.DataFrame = fetch().to_pandas(date_as_object=False)
    return frame


def run_limit(
    warehouse: Path,
    registry: Path,
    version: str,
    as_of: date,
    out_db: Path,
    memory_limit: str = "8GB",
    reporting_currency: str | None = None,
) -> dict[str, Any]:
    """Time the limit: model load, the features query, predict, write. Seconds per part.

    Amounts are in `reporting_currency` (default: the settings', as the pipeline's dbt var)."""
    from flows.registry import load_model
    from flows.settings import get_settings
    from models.features import prepare_features

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    model = load_model(registry, version)
    timings["model_load_s"] = time.perf_counter() - t0

    columns = model_columns(model.params)
    currency = (reporting_currency or get_settings().reporting_currency).strip().upper()
    params = {"as_of": as_of, "reporting_currency": currency, **dbt_vars()}

    t = time.perf_counter()
    con = duckdb.connect(str(warehouse), read_only=True, config={"memory_limit": memory_limit})
    try:
        metrics = con.execute(
            "select metric, aggregation, limit_period from raw.config__usage_metrics order by metric"
        ).fetchall()
        frame = _fetch(con, features_sql(columns, metrics), params)
    finally:
        con.close()
    timings["query_s"] = time.perf_counter() - t
    rows_all = len(frame)

    t = time.perf_counter()
    active = frame[frame["is_active"]].reset_index(drop=True)
    X, _ = prepare_features(active, model.params, model.categories)
    probs = model.predict_proba(X)
    timings["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = pd.DataFrame(
        {
            "account_id": active["account_id"],
            "as_of": as_of,
            **{c: probs[c].to_numpy() for c in probs.columns},
            "model_version": version,
        }
    )
    out_db.parent.mkdir(parents=True, exist_ok=True)
    out = duckdb.connect(str(out_db))
    try:
        out.register("scores_frame", scores)
        out.execute("create or replace table limit_scores as select * from scores_frame")
    finally:
        out.close()
    timings["write_s"] = time.perf_counter() - t
    timings["limit_wall_s"] = time.perf_counter() - t0
    return {
        **{k: round(v, 3) for k, v in timings.items()},
        "rows_features": rows_all,
        "rows_scored": len(scores),
        "features": columns,
        "_frame": active,
        "_scores": scores,
    }


def agreement(
    warehouse: Path, features: list[str], frame: pd.DataFrame, scores: pd.DataFrame, as_of: date
) -> dict[str, Any]:
    """How the limit's features and scores compare with the pipeline's at the same as_of.

    Per feature: the share of active accounts where the limit's value equals the mart's
    (both null counts as equal; numbers within 1e-6 relative). Scores: Pearson correlation
    and mean absolute difference of p_expansion with scores.account_scores, and the overlap
    of the top decile."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        mart = con.execute(
            "select * from marts.account_features where snapshot_date = ? and is_active", [as_of]
        ).df()
        pipe = con.execute(
            "select account_id, p_expansion from scores.account_scores where as_of = ?", [as_of]
        ).df()
    finally:
        con.close()
    joined = frame.merge(mart, on="account_id", suffixes=("", "_mart"), how="outer")
    per_feature: dict[str, float] = {}
    for f in features:
        if f not in frame.columns or f not in mart.columns:
            per_feature[f] = float("nan")
            continue
        a, b = joined[f], joined[f + "_mart"]
        if pd.api.types.is_numeric_dtype(a.dtype) or pd.api.types.is_bool_dtype(a.dtype):
            x = pd.to_numeric(a.astype("Float64"), errors="coerce").astype(float).to_numpy()
            y = pd.to_numeric(b.astype("Float64"), errors="coerce").astype(float).to_numpy()
            same = (np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=1e-6, atol=1e-9)
        else:
            equal = (a.isna() & b.isna()) | (a.astype(object) == b.astype(object))
            same = equal.to_numpy(dtype=bool, na_value=False)
        per_feature[f] = round(float(np.mean(same)), 4)
    both = scores.merge(pipe, on="account_id", suffixes=("_limit", "_pipeline"))
    top_n = max(1, len(both) // 10)
    top_limit = set(both.nlargest(top_n, "p_expansion_limit")["account_id"])
    top_pipe = set(both.nlargest(top_n, "p_expansion_pipeline")["account_id"])
    return {
        "accounts_limit": len(frame),
        "accounts_pipeline": len(mart),
        "accounts_in_both": int(frame["account_id"].isin(mart["account_id"]).sum()),
        "feature_match_share": per_feature,
        "features_exact": sorted(f for f, v in per_feature.items() if v >= 0.999),
        "p_expansion_corr": round(
            float(both["p_expansion_limit"].corr(both["p_expansion_pipeline"])), 4
        ),
        "p_expansion_mean_abs_diff": round(
            float((both["p_expansion_limit"] - both["p_expansion_pipeline"]).abs().mean()), 5
        ),
        "top_decile_overlap": round(len(top_limit & top_pipe) / top_n, 4),
    }
