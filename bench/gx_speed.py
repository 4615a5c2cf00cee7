"""How long a data-quality gate takes on a large table: 1M rows x 20 expectations.

    .venv/bin/python bench/gx_speed.py [--rows 1000000] [--stock]

Writes a 1M-row table (30 columns) to a temporary DuckDB file and a 20-expectation suite,
then times what a gate does: read the table and validate it with `flows.quality.gx`. Two ways:

* `select * ... .df()`, the whole table, as the gates used to read it;
* `suite_query` (only the 14 columns the suite references) fetched through Arrow, as now.

`--stock` turns off the two GX speed-ups in `flows.quality.gx._speed_up_gx` to measure GX as
shipped. GX's one-off import and context start-up is printed separately. Prints seconds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.quality import gx
from flows.quality.suites import suite_query


def _suite() -> dict[str, Any]:
    def e(type_: str, **kwargs: Any) -> dict[str, Any]:
        return {"type": type_, "kwargs": kwargs, "meta": {"severity": "critical"}}

    expectations = [
        e("expect_table_row_count_to_be_between", min_value=1),
        e("expect_column_values_to_not_be_null", column="account_id"),
        e("expect_column_values_to_be_unique", column="account_id"),
        e("expect_compound_columns_to_be_unique", column_list=["account_id", "snapshot_date"]),
        e(
            "expect_column_values_to_be_in_set",
            column="segment",
            value_set=["smb", "mid_market", "enterprise"],
        ),
        e(
            "expect_column_max_to_be_between",
            column="snapshot_date",
            max_value={"$PARAMETER": "as_of"},
        ),
        e("expect_column_values_to_be_between", column="mrr", min_value=0),
        e("expect_column_values_to_not_be_null", column="mrr", mostly=0.95),
        e("expect_column_mean_to_be_between", column="mrr", min_value=0, max_value=1e6),
        e("expect_column_stdev_to_be_between", column="mrr", min_value=0.001),
        e("expect_column_values_to_be_between", column="nps_latest", min_value=0, max_value=10),
        e(
            "expect_column_values_to_be_between",
            column="max_limit_utilization",
            min_value=0,
            max_value=10,
        ),
        e(
            "expect_column_values_to_be_between",
            column="days_to_renewal",
            min_value=0,
            max_value=3660,
        ),
    ]
    expectations += [
        e("expect_column_values_to_be_between", column=f"f{i}", min_value=-10, max_value=10)
        for i in range(7)
    ]
    assert len(expectations) == 20
    return {
        "name": "bench",
        "meta": {"table": "bench.snapshots", "edge": "marts"},
        "expectations": expectations,
    }


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "account_id": [f"acct{i:08d}" for i in range(rows)],
            "snapshot_date": pd.Timestamp("2026-01-31")
            - pd.to_timedelta(rng.integers(0, 700, rows), unit="D"),
            "segment": rng.choice(["smb", "mid_market", "enterprise"], rows),
            "mrr": rng.gamma(2.0, 500.0, rows),
            "nps_latest": rng.integers(0, 11, rows).astype(float),
            "max_limit_utilization": rng.uniform(0, 1.5, rows),
            "days_to_renewal": rng.integers(0, 366, rows),
        }
    )
    for i in range(7):
        frame[f"f{i}"] = rng.normal(size=rows)
    for i in range(16):  # columns the suite does not read
        frame[f"unused{i}"] = rng.normal(size=rows) if i % 2 else rng.choice(["a", "b", "c"], rows)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stock", action="store_true", help="GX without this project's speed-ups")
    args = parser.parse_args()
    if args.stock:
        gx._speed_up_gx = lambda: None

    start = time.perf_counter()
    gx._context()
    print(f"GX import and context start-up (once per process): {time.perf_counter() - start:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        suite_path = Path(tmp) / "bench.json"
        spec = _suite()
        suite_path.write_text(json.dumps(spec))
        db = Path(tmp) / "gx_speed.duckdb"
        con = duckdb.connect(str(db))
        frame = _frame(args.rows)
        con.execute("create schema bench")
        con.register("frame", frame)
        con.execute("create table bench.snapshots as select * from frame")
        con.unregister("frame")
        del frame
        params = {"as_of": pd.Timestamp("2026-01-31")}
        n_cols = len(con.execute("describe bench.snapshots").fetchall())
        print(f"{args.rows:,} rows x {n_cols} columns, {len(spec['expectations'])} expectations")

        start = time.perf_counter()
        whole = con.execute("select * from bench.snapshots").df()
        read_all = time.perf_counter() - start
        start = time.perf_counter()
        result = gx.validate_frame(whole, suite_path, parameters=params)
        check_all = time.perf_counter() - start
        assert result.passed, [o.describe() for o in result.critical]
        del whole
        print(f"select * + .df():     read {read_all:6.2f} s  validate {check_all:6.2f} s")

        available = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns where table_schema = 'bench'"
            ).fetchall()
        )
        sql, _ = suite_query(spec, available)
        start = time.perf_counter()
        rel = con.sql(sql)
        fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
        pruned = fetch().to_pandas(date_as_object=False)
        read_some = time.perf_counter() - start
        start = time.perf_counter()
        result = gx.validate_frame(pruned, suite_path, parameters=params)
        check_some = time.perf_counter() - start
        assert result.passed, [o.describe() for o in result.critical]
        print(
            f"suite columns, Arrow: read {read_some:6.2f} s  validate {check_some:6.2f} s "
            f"({pruned.shape[1]} columns)"
        )
        con.close()
    print(f"seconds: {read_some + check_some:.2f}")


if __name__ == "__main__":
    main()
