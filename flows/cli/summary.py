"""The summary `expansion run` prints after its stage lines: the outcome, what needs a look
(gates that warned or failed, quarantined rows, late sources, syncs), where the results are,
and the accounts to approach first, with the column the list is ranked by."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.settings import Settings

GATE_WARNINGS_SHOWN = 3  # per suite; the log file and the Data Docs hold every one


def print_run_summary(
    console: Console, settings: Settings, summary: dict[str, Any], log_file: Path | None
) -> None:
    total = (summary.get("stages") or {}).get("total")
    took = f" in {total:.0f} s" if isinstance(total, int | float) else ""
    console.print(
        f"[bold]run {summary['run_id']}[/] as of {summary['as_of']}: {summary['status']}{took}"
    )
    for note in summary.get("notes") or []:  # e.g. a past as_of: history only, nothing synced
        console.print(f"[yellow]{escape(note)}[/]")
    model = summary.get("model") or {}
    champion, trained = model.get("champion_version"), model.get("trained_version")
    how = (
        "reused"
        if not trained
        else "trained this run"
        if trained == champion
        else f"kept; challenger {trained} trained this run, not promoted"
    )
    console.print(
        f"model [bold]{champion}[/] ({how}); {summary['accounts_scored']} accounts scored"
    )
    print_gates(console, summary.get("gates") or [])
    quarantined = summary.get("rows_quarantined") or {}
    if quarantined:
        console.print(
            f"[yellow]quarantined rows[/] (see raw._quarantine in the warehouse): {quarantined}"
        )
    for f in summary.get("freshness") or []:
        if f["status"] != "pass":
            console.print(
                f"[yellow]source {f['source']} freshness {f['status']}[/] ({f['age_hours']} h)"
            )
    for s in summary.get("synced", []):
        console.print(
            f"sync {s['name']} ({s['status']}): {s['inserted']} inserted, {s['updated']} updated, "
            f"{s['deleted']} deleted, {s['failed']} failed -> "
            f"{', '.join(s['files']) or 'nothing new to send'}",
            highlight=False,
        )
    console.print(
        f"scored tables: {settings.serving_db} (account_scores, account_score_history, "
        "accounts, contracts, mrr_movements, ...)",
        highlight=False,
    )
    console.print(f"parquet copies: {settings.serving / 'parquet' / 'current'}", highlight=False)
    if summary.get("report"):
        console.print(f"model report: {summary['report']}", highlight=False)
    if log_file is not None:
        console.print(f"log: {log_file}", highlight=False, soft_wrap=True)
    print_top_accounts(console, settings, summary)


def gate_problems(gates: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The suites that warned or failed, and how many passed clean."""
    problems = [g for g in gates if g.get("critical") or g.get("warnings") or not g.get("passed")]
    return problems, len(gates) - len(problems)


def print_gates(console: Console, gates: list[dict[str, Any]]) -> None:
    if not gates:
        return
    problems, clean = gate_problems(gates)
    if problems:
        table = Table(title="data-quality gates that warned or failed")
        for col in ("suite", "rows", "status", "what"):
            table.add_column(col)
        for g in problems:
            said = [*g.get("critical", []), *g.get("warnings", [])]
            more = len(said) - GATE_WARNINGS_SHOWN
            table.add_row(
                g["suite"],
                str(g["rows"]),
                g.get("status", ""),
                escape(
                    "\n".join(said[:GATE_WARNINGS_SHOWN])
                    + (f"\n... {more} more" if more > 0 else "")
                ),
            )
        console.print(table)
    docs = next((g.get("data_docs") for g in gates if g.get("data_docs")), None)
    console.print(
        f"{clean} of {len(gates)} data-quality suites passed"
        + (" (every one)" if not problems else "")
        + (f"; data docs: {docs}" if docs else ""),
        highlight=False,
    )


def _ranking(settings: Settings, version: str | None) -> tuple[str, float | None]:
    """How the champion's action list is ranked: rank_by and the balanced ranking's w."""
    try:
        from flows.registry import read_metadata

        meta = read_metadata(settings.registry, version) if version else {}
        action = (meta.get("params") or {}).get("action_list") or {}
        rank_by = str(action.get("rank_by", "balanced"))
        weight = action.get("value_weight", 0.0)
        if weight == "auto":
            weight = meta.get("action_value_weight") or 0.0
        return rank_by, float(weight)
    except Exception:  # the table still shows the rank
        return "balanced", None


RANK_COLUMNS = ("action_rank", "offer_mrr", "expected_expansion_mrr", "reporting_currency")


def _with_rank_columns(
    settings: Settings, run_id: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The top rows with their action rank and offer MRR from the published scores of this
    run (the run summary keeps the list's order, not the figures it is ranked by); as they
    were when the serving file holds another run's scores (a history-only run)."""
    if not rows or all(c in rows[0] for c in RANK_COLUMNS) or not settings.serving_db.exists():
        return rows
    from flows.warehouse import Warehouse

    try:
        serving = Warehouse.from_settings(settings).file(settings.serving_db)
        with serving.connect(read_only=True) as con:
            found = con.execute(
                f"select account_id, {', '.join(RANK_COLUMNS)} from account_scores "
                "where run_id = ? and account_id in (select unnest(?))",
                [run_id, [r["account_id"] for r in rows]],
            ).df()
    except Exception:  # the table still shows the rank
        return rows
    figures = {
        str(r["account_id"]): {str(k): v for k, v in r.items()} for r in found.to_dict("records")
    }
    return [{**row, **figures.get(row["account_id"], {})} for row in rows]


def _priority(p: float, mrr: Any, weight: float | None) -> str:
    """p x offer MRR ** w, the balanced ranking's key (models/ranking.py); "" without an offer
    (ranked by its probability among the cheapest offers)."""
    if weight is None or not isinstance(mrr, int | float) or not mrr > 0:
        return ""
    return f"{p * mrr**weight:,.2f}"


def _money(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else ""


def print_top_accounts(console: Console, settings: Settings, summary: dict[str, Any]) -> None:
    rows = _with_rank_columns(settings, summary["run_id"], summary.get("top_accounts") or [])
    if not rows:
        return
    version = (summary.get("model") or {}).get("champion_version")
    rank_by, weight = _ranking(settings, version)
    with_mrr = any(r.get("offer_mrr") is not None for r in rows)
    if rank_by == "balanced":
        w = "w" if weight is None else f"{weight:g}"
        order = f"p(expansion) x offer MRR^{w}"
    else:
        order = {"expected_mrr": "expected MRR", "probability": "p(expansion)"}.get(
            rank_by, rank_by
        )
    top = Table(title=f"top accounts to approach, ranked by {order}")
    columns = ["#", "account", "p(expansion)"]
    if with_mrr:
        currency = next((r["reporting_currency"] for r in rows if r.get("reporting_currency")), "")
        columns += [
            f"offer MRR {currency}".rstrip(),
            "priority" if rank_by == "balanced" else "expected MRR",
        ]
    columns += ["offer", "tier", "first reason"]
    for col in columns:
        numeric = col in {"#", "priority", "expected MRR"} or col.startswith("offer MRR")
        top.add_column(col, justify="right" if numeric else "left")
    for position, row in enumerate(rows, 1):
        p = row["p_expansion"]
        cells = [
            str(row.get("action_rank") or position),
            f"{row.get('account_name') or ''} ({row['account_id']})",
            f"{p:.2f}",
        ]
        if with_mrr:
            mrr = row.get("offer_mrr")
            cells.append(_money(mrr))
            if rank_by == "balanced":
                cells.append(_priority(p, mrr, weight))
            else:
                cells.append(_money(row.get("expected_expansion_mrr")))
        cells += [
            str(row.get("next_best_offer") or ""),
            str(row.get("touch_tier") or ""),
            str(row.get("reason_1") or ""),  # the others: account_scores.reason_2, reason_3
        ]
        top.add_row(*(escape(c) for c in cells))
    console.print(top)
