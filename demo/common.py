"""What every demo business shares: the calendar, the record stores, the run loop and the files.

A business is a simulation (`Simulation`) that steps through the calendar months with all
accounts as numpy vectors; `run` drives it month by month, writes the usage extracts as it goes
(so memory does not grow with the months), then the CSV extracts, the oracle of true expansion
probabilities and the MRR truth file, all in the layout and types of `flows.ingest.contract`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from flows.ingest.contract import TABLES_BY_KEY
from flows.ingest.contract import table as contract_table

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

DAY = 86_400
NEVER = np.int64(1 << 40)  # a day number far in the future
LONG_AGO = np.int64(-(1 << 30))
NULL_TS = np.int64(-1)
LABEL_DAYS = 90

USAGE_CHUNK = 16_384  # accounts per Parquet row group: bounds memory at any size
USAGE_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("usage_date", pa.date32()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["account_id", "metric"],
}


@dataclass(frozen=True)
class GenerationSummary:
    """What `generate` wrote and how hard the oracle finds the labels."""

    rows: dict[str, int]  # "<source>.<table>" -> rows written
    files: tuple[Path, ...]
    base_rate: float  # share of complete-label snapshots that expand within 90 days
    oracle_auc: float  # ROC AUC of p_expansion_90d against label_expansion_90d
    upsell_events: int
    cross_sell_events: int
    labelled_snapshots: int


# --- calendar helpers --------------------------------------------------------------------------


def month_of(day: I64) -> I64:
    """Months since 1970-01 of a day number (days since 1970-01-01)."""
    return np.asarray(day, dtype="datetime64[D]").astype("datetime64[M]").astype(np.int64)


def month_index(day: int) -> int:
    """Months since 1970-01 of one day number."""
    return int(np.datetime64(day, "D").astype("datetime64[M]").astype(np.int64))


def month_start(month: I64) -> I64:
    return np.asarray(month, dtype="datetime64[M]").astype("datetime64[D]").astype(np.int64)


def days_in_month(month: I64) -> I64:
    return month_start(np.asarray(month) + 1) - month_start(month)


def add_months(day: I64, k: I64) -> I64:
    """Same day-of-month `k` months later, clamped to the month's last day."""
    day = np.asarray(day, dtype=np.int64)
    month = month_of(day)
    dom = day - month_start(month)
    target = month + np.asarray(k, dtype=np.int64)
    return month_start(target) + np.minimum(dom, days_in_month(target) - 1)


def next_anniversary(start_day: I64, after_day: I64, term: int | I64) -> I64:
    """First anniversary (every `term` months) of `start_day` strictly after `after_day`."""
    diff = month_of(after_day) - month_of(start_day)
    k = np.maximum(diff // term, 0) * term
    cand = add_months(start_day, k)
    cand = np.where(cand <= after_day, add_months(start_day, k + term), cand)
    return np.where(cand <= after_day, add_months(start_day, k + 2 * term), cand)


def anniversary_in_month(start_day: I64, month: int, term: int | I64) -> tuple[B, I64]:
    """Whether an anniversary of `start_day` (every `term` months) falls in `month`, and its day."""
    diff = month - month_of(start_day)
    hit = (diff > 0) & (diff % term == 0)
    return hit, add_months(start_day, np.maximum(diff, 0))


def sigmoid(x: F64) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


@dataclass(frozen=True)
class Calendar:
    months: int
    first_month: int  # months since 1970-01
    start: I64  # first day of each month
    last: I64  # last day of data in each month (end_day in the last month)
    full_last: I64  # calendar last day of each month
    end_day: int

    @property
    def window_start(self) -> int:
        return int(self.start[0])

    @property
    def end_ts(self) -> int:
        return (self.end_day + 1) * DAY - 1

    @classmethod
    def build(cls, end_date: date, months: int) -> Calendar:
        end_day = int(np.datetime64(end_date, "D").astype(np.int64))
        last_month = month_index(end_day)
        first = last_month - months + 1
        ms = np.arange(first, last_month + 1, dtype=np.int64)
        start = month_start(ms)
        full_last = month_start(ms + 1) - 1
        return cls(months, first, start, np.minimum(full_last, end_day), full_last, end_day)


# --- growable column stores --------------------------------------------------------------------


class Rows:
    """Rows appended in batches of numpy arrays; concatenated once at the end."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.parts: dict[str, list[NDArray[Any]]] = {n: [] for n in names}

    def add(self, **cols: Any) -> None:
        sizes = [np.size(v) for v in cols.values() if np.ndim(v) > 0]
        n = max(sizes) if sizes else 1
        for name in self.names:
            v = np.asarray(cols[name])
            self.parts[name].append(np.broadcast_to(v, (n,)).copy() if v.ndim == 0 else v)

    def get(self, name: str, dtype: Any = np.int64) -> NDArray[Any]:
        parts = self.parts[name]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


class Subs:
    """Subscriptions with a mutable cancel time; grown by doubling."""

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.acc = np.zeros(capacity, np.int64)
        self.prod = np.zeros(capacity, np.int64)
        self.period = np.zeros(capacity, np.int64)  # billing period, months
        self.term = np.zeros(capacity, np.int64)  # contract term, months
        self.start_ts = np.zeros(capacity, np.int64)
        self.cancel_ts = np.full(capacity, NULL_TS, np.int64)
        self.discount = np.zeros(capacity, np.float64)

    def add(
        self, acc: I64, prod: I64, period: I64, start_ts: I64, discount: F64, term: Any = 12
    ) -> I64:
        k = len(acc)
        while self.n + k > len(self.acc):
            for name in ("acc", "prod", "period", "term", "start_ts", "discount"):
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.zeros_like(arr)]))
            self.cancel_ts = np.concatenate([self.cancel_ts, np.full_like(self.cancel_ts, NULL_TS)])
        idx = np.arange(self.n, self.n + k, dtype=np.int64)
        self.acc[idx], self.prod[idx], self.period[idx] = acc, prod, period
        self.start_ts[idx], self.discount[idx], self.term[idx] = start_ts, discount, term
        self.n += k
        return idx


# --- Arrow helpers -------------------------------------------------------------------------------


def ids(prefix: str, nums: NDArray[Any], width: int) -> pa.Array:
    digits = pc.utf8_lpad(
        pc.cast(pa.array(np.asarray(nums, np.int64)), pa.string()), width=width, padding="0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def _arrow_type(duck: str) -> pa.DataType:
    if duck == "VARCHAR":
        return pa.string()
    if duck == "INTEGER":
        return pa.int32()
    if duck == "BOOLEAN":
        return pa.bool_()
    if duck == "TIMESTAMP":
        return pa.timestamp("s")  # UTC, written as `2025-03-14 09:21:05`
    if duck == "DOUBLE":
        return pa.float64()
    if duck == "DATE":
        return pa.date32()
    if duck.startswith("DECIMAL"):
        precision, scale = (int(x) for x in duck[8:-1].split(","))
        return pa.decimal128(precision, scale)
    raise ValueError(f"contract type {duck!r} has no Arrow mapping in demo.common")


def _to_arrow(values: Any, duck: str) -> pa.Array:
    """Numpy or Arrow values to the Arrow type of a contract column (nulls: -1 ts, NaN, None)."""
    typ = _arrow_type(duck)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.cast(typ)
    arr = np.asarray(values)
    if duck == "TIMESTAMP":
        return pa.array(arr.astype(np.int64), typ, mask=arr < 0)
    if duck.startswith("DECIMAL"):
        return pa.array(np.round(arr.astype(np.float64), typ.scale), from_pandas=True).cast(typ)
    if duck == "INTEGER" and arr.dtype.kind == "f":
        return pa.array(arr, pa.float64(), from_pandas=True).cast(typ)
    return pa.array(arr, typ, from_pandas=True)


def extract_table(source: str, name: str, cols: dict[str, Any]) -> pa.Table:
    """Arrow table with exactly the contract's columns, order and types."""
    spec = contract_table(source, name)
    expected = [c.name for c in spec.columns]
    if list(cols) != expected:
        raise ValueError(
            f"{source}.{name}: columns {list(cols)} differ from the contract {expected}"
        )
    arrays = [_to_arrow(cols[c.name], c.type) for c in spec.columns]
    return pa.table(arrays, names=expected)


def plan_limits_table(limits: list[tuple[str, str, float, bool]]) -> pa.Table:
    """billing.plan_limits from (plan_id, metric, limit_value, per_unit) rows; the demo
    businesses' limits are caps (no overage price)."""
    return extract_table(
        "billing",
        "plan_limits",
        {
            "plan_id": [x[0] for x in limits],
            "metric": [x[1] for x in limits],
            "limit_value": [x[2] for x in limits],
            "per_unit": [x[3] for x in limits],
            "overage_price": [None for _ in limits],
        },
    )


def pick(names: tuple[str, ...], idx: NDArray[Any], null: B | None = None) -> pa.Array:
    return pa.array(list(names)).take(pa.array(np.asarray(idx, np.int64), mask=null))


def join_text(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def roc_auc(y: B, p: F64) -> float:
    from sklearn.metrics import roc_auc_score

    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, p))


# --- the run -------------------------------------------------------------------------------------


class Simulation(Protocol):
    """One demo business as `run` drives it."""

    cal: Calendar
    account_ids: pa.Array
    events: Rows  # acc, day, ts, kind (1 upsell, 2 cross-sell), sub, delta_mrr

    def begin(self) -> None:
        """Customers before the window, and the hazards for the first month."""

    def step(self, m: int) -> None:
        """Month `m`: latent states, churn, expansion, contraction, new accounts."""

    def usage_month(self, m: int) -> Iterator[pa.Table]:
        """Daily usage rows of month `m` (USAGE_SCHEMA), in chunks of accounts."""

    def crm_month(self, m: int) -> None:
        """Tickets, surveys, activities and open deals of month `m`."""

    def month_end(self, m: int) -> None:
        """Hazards for the next month and the oracle rows of the month's last day."""

    def tables(self) -> Iterator[tuple[str, str, pa.Table]]:
        """The CSV extracts, one at a time."""

    def oracle(self) -> pa.Table:
        """expansion_oracle.parquet."""

    def mrr_truth(self) -> pa.Table:
        """mrr_monthly.parquet."""


def run(sim: Simulation, landing_dir: Path, oracle_dir: Path) -> GenerationSummary:
    """Drive `sim` through its calendar and write its extracts, oracle and MRR truth."""
    cal = sim.cal
    files: list[Path] = []
    rows: dict[str, int] = {}

    usage_dir = landing_dir / "usage" / "usage_daily"
    clear_exports(landing_dir)
    usage_dir.mkdir(parents=True, exist_ok=True)
    sim.begin()
    usage_rows = 0
    for m in range(cal.months):
        sim.step(m)
        stamp = str(np.datetime64(int(cal.start[m]), "D"))[:7]
        path = usage_dir / f"usage_daily_{stamp}.parquet"
        with pq.ParquetWriter(path, USAGE_SCHEMA, **PARQUET_OPTIONS) as writer:
            for chunk in sim.usage_month(m):
                writer.write_table(chunk)
                usage_rows += chunk.num_rows
        files.append(path)
        sim.crm_month(m)
        sim.month_end(m)
    rows["usage.usage_daily"] = usage_rows

    stamp = str(np.datetime64(cal.end_day, "D")).replace("-", "")
    for source, name, tbl in sim.tables():
        folder = landing_dir / source / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}_{stamp}.csv"
        pacsv.write_csv(tbl, path, pacsv.WriteOptions(quoting_style="needed"))
        files.append(path)
        rows[f"{source}.{name}"] = tbl.num_rows
        del tbl
    rows = {key: rows[key] for key in TABLES_BY_KEY if key in rows}  # contract order

    oracle = sim.oracle()
    oracle_dir.mkdir(parents=True, exist_ok=True)
    path = oracle_dir / "expansion_oracle.parquet"
    pq.write_table(oracle, path, compression="zstd")
    files.append(path)
    path = oracle_dir / "mrr_monthly.parquet"
    pq.write_table(sim.mrr_truth(), path, compression="zstd")
    files.append(path)

    complete = oracle.column("is_label_complete").to_numpy(zero_copy_only=False)
    label = oracle.column("label_expansion_90d").to_numpy(zero_copy_only=False)[complete]
    prob = oracle.column("p_expansion_90d").to_numpy()[complete]
    kind = sim.events.get("kind")
    in_window = sim.events.get("day") >= cal.window_start
    return GenerationSummary(
        rows=rows,
        files=tuple(files),
        base_rate=float(label.mean()) if len(label) else float("nan"),
        oracle_auc=roc_auc(label, prob),
        upsell_events=int(((kind == 1) & in_window).sum()),
        cross_sell_events=int(((kind == 2) & in_window).sum()),
        labelled_snapshots=int(complete.sum()),
    )


def clear_exports(landing_dir: Path) -> None:
    """Remove extracts of an earlier demo run, so a folder never mixes two runs."""
    for spec in TABLES_BY_KEY.values():
        folder = landing_dir / spec.source / spec.name
        ext = "parquet" if spec.file_format == "parquet" else "csv"
        for old in sorted(folder.glob(f"{spec.name}_*.{ext}")):
            old.unlink()


def oracle_table(
    account_ids: pa.Array,
    snapshots: Rows,
    p90: F64,
    events: Rows,
    end_day: int,
) -> pa.Table:
    """expansion_oracle.parquet from the month-end hazards and the expansion events.

    `snapshots` has acc, day, p_up, p_cross (the true monthly hazards for the month after each
    snapshot); `p90` is the true probability of an expansion within LABEL_DAYS of each. The
    labels are the events (1 upsell, 2 cross-sell) whose day is in (day, day + LABEL_DAYS].
    """
    acc, day = snapshots.get("acc"), snapshots.get("day")
    p_up, p_cross = snapshots.get("p_up", np.float64), snapshots.get("p_cross", np.float64)
    ev_acc, ev_day, ev_kind = events.get("acc"), events.get("day"), events.get("kind")
    span = np.int64(1 << 32)

    def within(kind_mask: B) -> B:
        key = np.sort(ev_acc[kind_mask] * span + ev_day[kind_mask])
        lo = np.searchsorted(key, acc * span + day, side="right")
        hi = np.searchsorted(key, acc * span + day + LABEL_DAYS, side="right")
        return np.asarray(hi > lo)

    up, cross = within(ev_kind == 1), within(ev_kind == 2)
    order = np.lexsort((day, acc))
    return pa.table(
        {
            "account_id": account_ids.take(pa.array(acc[order])),
            "snapshot_date": pa.array(day[order].astype(np.int32), pa.date32()),
            "p_upsell_month": pa.array(p_up[order]),
            "p_cross_sell_month": pa.array(p_cross[order]),
            "p_expansion_90d": pa.array(p90[order]),
            "label_expansion_90d": pa.array((up | cross)[order]),
            "label_upsell_90d": pa.array(up[order]),
            "label_cross_sell_90d": pa.array(cross[order]),
            "is_label_complete": pa.array((day + LABEL_DAYS <= end_day)[order]),
        }
    )
