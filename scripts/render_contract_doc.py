"""Render docs/extract-contract.md from flows/ingest/contract.py and flows/ingest/currencies.py.

    .venv/bin/python scripts/render_contract_doc.py          # rewrite the document
    .venv/bin/python scripts/render_contract_doc.py --check  # exit 1 if it is out of date

The document is never edited by hand: tests/flows/test_contract_doc.py fails when the committed
file differs from what this script renders, so the contract and its description cannot drift.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from flows.ingest.contract import (
    SOURCES,
    TABLES,
    VOCABULARIES,
    Column,
    Table,
    future_tolerance_text,
)
from flows.ingest.currencies import MINOR_UNITS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extract-contract.md"
COMMAND = ".venv/bin/python scripts/render_contract_doc.py"

SOURCE_TITLES = {"crm": "CRM", "billing": "Billing", "usage": "Product usage"}

INTRO = """\
# The extract contract

<!-- Generated from flows/ingest/contract.py and flows/ingest/currencies.py by scripts/render_contract_doc.py.
     Do not edit by hand: change the contract, then run `{command}`. -->

What the pipeline accepts from the CRM, billing and product-usage systems. The loader
(`flows/ingest/load.py`) checks every extract against this contract before anything of it reaches the
warehouse's `raw` schema; a source that follows it needs no code change in the pipeline.

## Files

- **Layout.** Each source exports into its own folder, one folder per table:
  `<landing>/<source>/<table>/*.csv`, `*.csv.gz`, `*.parquet`, `*.jsonl` or `*.jsonl.gz`.
  `<landing>` is `EXPANSION_LANDING_DIR`; `config/sources.yml` can point a source at another
  folder or URL, or at a database (see [Database sources](#database-sources-postgresql)).
- **CSV** files are UTF-8 with a header line naming the columns, comma-separated, quoted with
  `"`. Columns are matched by name, in any order. An empty value is a missing value.
- **Append-only.** Files are exports: a new file is added for new or changed rows, an old file
  is never rewritten. Each file is loaded once, recognised by the SHA-256 checksum of its
  content: a file seen before is skipped, and a rewritten file counts as a new one (all its rows
  load again: unchanged ones are fine, changed ones are checked as history, below).
- **JSON Lines** files hold one object per line; keys are column names. A value is a string,
  a number, true/false or null: a nested object or array in a contract column rejects its row
  (named with row and column), and a string is loaded as the text it holds, without quotes.
- **Timestamps** are UTC, written as ISO 8601 (`2024-03-01T12:00:00Z`). A value with an offset
  (`2024-03-01T14:00:00+02:00`) is converted to UTC; a value without one is taken as UTC.
  Dates are `YYYY-MM-DD`; a timestamp is a date only at midnight UTC (`2024-03-01T00:00:00`,
  `2024-03-01 00:00:00+00`, as Parquet writers and PostgreSQL `timestamptz` give dates): any
  other time of day in a DATE column is rejected, never cut to its day.
- **Nothing that has happened is dated in the future.** Columns marked *not in the future*
  below (versions, events, measurements: `updated_at`, `created_at`, `usage_date` ...) may not
  be later than the load's wall clock plus {tolerance} (`FUTURE_TOLERANCE` in
  `flows/ingest/contract.py`: exporting systems' clocks drift, and a business's today may be
  tomorrow in UTC): such a row is rejected, named. An account version
  dated 9999-12-31 would otherwise win over every later correction. Dates that lie ahead by
  nature (a subscription's start or cancellation, a scheduled plan change, a due date, a budget
  exchange rate, an open opportunity's expected close) are not limited.
- **Whole numbers** (INTEGER columns) are digits with an optional sign: `120`, `+7`, and
  `120.0` (a fraction of zeros only, as spreadsheets write whole numbers) read as 120.
  `120.5`, `1e2`, `1,200`, `12 000` and `0x10` are rejected, never rounded or guessed; so is a
  Parquet DOUBLE or a PostgreSQL `numeric` with a fraction. No value is ever changed by a cast:
  a DECIMAL with more decimals than its column, a timestamp in a DATE column, a fraction in a
  whole number are rejected where they are.
- **Amounts** are in major units with a decimal point, next to a column naming their ISO 4217
  currency: 12.50 USD is `12.50`, 1250 JPY is `1250`, not `12.50`. An amount may not carry more
  decimals than its currency has (trailing zeros such as `1250.00` are fine): a fraction in a
  zero-decimal currency is an error (see [Currencies](#currencies)).
- **Extra columns** that the contract does not name are kept in raw, in the JSON column
  `_extra`, and ignored downstream. To use one, add it to `flows/ingest/contract.py`.
- **Optional tables** may be absent: the features built from them are then missing, and scores
  are still produced. Required tables must have rows, loaded in this run or an earlier one.
- **Required columns** must be present in every file and non-empty in every row. Optional
  columns may be left out of a file or left empty. Every value must read as its column's type
  and respect the column's rules below.
- **Primary keys** are unique among the rows of a table loaded in one run, unless the table has
  an `updated_at` column: then several versions of a key may come (in one file or across files,
  each with its own `updated_at`), and the latest wins.
- **History is not rewritten.** A row loaded before may come again (a full export, a
  re-sent file) only unchanged: a row of a table without versions (the catalogue, usage,
  subscription changes ...) or a version (same key and `updated_at`) that comes again with
  other values is rejected, naming the new row, the columns that differ, their earlier values
  and the file and row they were loaded from. A change is a new version with a later
  `updated_at`; in a table without versions, a restatement (a late usage correction) comes in
  a file named `<name>_correction.<ext>` (e.g. `usage_daily_2026-04_correction.parquet`),
  whose changed rows replace the loaded ones and are logged with both values.
- **Rules across tables** (listed with each table below) hold between a row and the rows it
  references, e.g. a subscription change's plan belongs to the subscription's product; a row
  that breaks one is rejected, naming both values.
- **References** (`crm.accounts.account_id` and the like) must resolve to a row of the
  referenced table loaded in the same run or earlier.
- **Bad rows** are listed with file, row, column, value and reason. What happens next is the
  `bad_rows` policy in `config/sources.yml`, per table: `fail` (the default) stops the load and
  keeps nothing of it; `quarantine` moves the bad rows to `raw._quarantine` and loads the rest.

## Your business: usage metrics, plan limits, pricing and terms

Nothing in the pipeline names a metric, a plan or a product: a business declares what it
measures, and its billing extracts say what it sells.

**Usage metrics** are declared in `config/business.yml` (or the file `EXPANSION_BUSINESS_CONFIG`
names; `config/examples/` holds the demo businesses' declarations to copy):

```yaml
usage_metrics:
  - name: contacts_created        # the value of usage.usage_daily.metric
    label: {{en: contacts created, ja: 作成した連絡先}}   # one text, or one per locale
    unit: {{en: contacts, ja: 件}}                      # shown after numbers; may be ""
    aggregation: sum              # sum | level | distinct: how a metric's days combine
    limit_period: month           # day | month | held: how a plan limit on it is measured
  - name: records_stored
    label: records stored
    aggregation: level
    limit_period: held
```

- `aggregation`: `sum` for counts or amounts of events (windows add days up; a day without a
  row counts as 0); `level` for something held, such as storage (windows average the reported
  days; the latest reported value is the current level); `distinct` for a distinct count per day,
  such as active users (windows average the reported days).
- `limit_period` (omit it when no plan limits the metric): `day` compares the mean daily value
  over 30 days with the limit (seats: users active on a day), `month` the 30-day total (a
  monthly quota), `held` the latest level (storage).
- The loader accepts exactly the declared names in `usage.usage_daily.metric` and
  `billing.plan_limits.metric` (an undeclared one is a bad row, named with file, row and the
  declared names). Each metric gets a feature family at every snapshot, in
  `marts.account_metric_snapshots` (one row per account, date and metric) and as model features
  `<metric>__<stat>` in `marts.account_features`: trailing 7/30/90-day sums (`sum`) or averages,
  the latest level (`level`), the trend over whole weeks, active days, days since last use, and
  the share of the effective limit where one exists. Reasons are phrased from `label` and `unit`.
  A metric needs no Python or SQL.

**Plan limits** are data: `billing.plan_limits` has one row per plan and metric. An account's
effective limit on a metric is its core plan's limit plus the limits of the add-ons it holds
(each times the quantity bought when `per_unit`); a metric its core plan does not limit is
unlimited. A limit of 0 is a limit (nothing included): utilisation is 100% while nothing is
used and capped at 10x (var `utilization_cap`) beyond.

**Pricing** is `billing.plans.pricing_model`: `per_seat` (price x quantity; seats are usually
also a `per_unit` limit of 1 on the seats metric), `flat` (one price per tier with bundled
limits; quantity 1) or `usage` (a committed base
plus `billing.plan_limits.overage_price` per unit beyond a limit, billed through invoices).
`list_price` is a monthly price in the plan's `currency`; a plan sold only on one billing
period says so in `billing_period_months`. What an account pays is always its own
`subscription_changes` (`unit_amount` x `quantity` per billing period).

**Terms**: every subscription has `billing_period_months` and `term_months`; the core
subscription's term, billing period, days and months to renewal and whether it is on a monthly
term are columns of `marts.account_snapshots` and model features.

**Reporting currency**: every amount in the marts and scores is in `EXPANSION_REPORTING_CURRENCY`
(default USD), named in a `reporting_currency` column beside it; amounts in the billing
currency end in `_local`. A subscription version converts at the rates of the month it took
effect (booked rates: MRR does not move with exchange rates until the next version), from
`billing.exchange_rates` when that month has a row, else the static
`dbt_project/seeds/fx_rates.csv`. Every billing currency must have a static rate; a reporting
currency that only `billing.exchange_rates` knows needs a row for every month a version took
effect (the build stops naming the currency otherwise). Reasons, offers and the model report
print amounts in that currency and read in `EXPANSION_LOCALE` (`en`, `ja`).

**Firmographics are optional**: `crm.accounts.segment`, `industry`, `country` and
`employee_count` may be absent or empty. Nothing is invented for them: an empty segment is
missing to the model (no segment, no effect) and touch tiers then go by MRR alone.

## Database sources (PostgreSQL)

A billing system (or any source) that lives in an operational PostgreSQL database is read
directly instead of through files. In `config/sources.yml`:

```yaml
sources:
  billing:
    type: postgres
    dsn_env: EXPANSION_BILLING_DSN  # the NAME of the env var holding the connection string
    tables:
      customers: {{table: billing.customers, watermark: updated_at}}
      subscriptions: {{table: billing.subscriptions, watermark: updated_at}}
      subscription_changes:  # a query renames the system's columns to the contract's
        query: >-
          select id as change_id, subscription_id, effective_at, plan_id,
                 seats as quantity, unit_price as unit_amount, currency
          from billing.plan_changes
        watermark: effective_at
      products: {{table: billing.products}}  # no watermark: the whole table every run
      plans: {{table: billing.plans}}
```

- `dsn_env` names the environment variable that holds the DSN
  (`postgresql://user:password@host:5432/dbname`); the DSN itself is never written in the
  config, logged, or shown in an error. Extracts are recorded as
  `postgresql://host:port/dbname/<schema.table>` (or `.../query:<table>`).
- `tables` maps the source's contract tables (below) to either `table: schema.name` (letters,
  digits and underscores; quoted as identifiers) or `query:`, one `SELECT` (or `WITH ...
  SELECT`) whose columns carry the contract's names. The session is read-only. Only the
  tables listed are read, so every required table of the source must be listed.
- `watermark` is a column that grows with every change of a row, such as `updated_at`. Each
  run copies only the rows whose watermark is greater than the highest one already loaded.
  Without a watermark the whole table is copied every run, ordered by its primary key, and an
  unchanged table is skipped by its checksum. A row committed late with a watermark below one
  already loaded is not seen until a full reload (`expansion run --full-refresh`).
- Each run copies the rows with `COPY ... TO STDOUT (FORMAT csv, HEADER true)` into
  `<staging>/<source>/<table>/<run_id>.csv` (by default `extracts/` next to the warehouse) and
  loads that file with the same checks as any other. The session runs with `TIME ZONE 'UTC'`:
  `timestamptz` values arrive in UTC, `timestamp` values are taken as UTC.
- Values get the same checks as a file's text: a `numeric` seat count of 120.5 in an INTEGER
  column or a `timestamptz` with a time of day (in UTC) in a DATE column is a bad row, named by
  the extract's table and row (rows are copied in primary-key order). A `json`, `jsonb`, array
  or composite column mapped to a contract column is refused, naming it: select a scalar in a
  `query:` (`payload->>'industry' as industry`).
- A refused or dropped connection or a lock timeout is retried; an error in a table or query
  (a syntax error, an unknown column) fails the run naming the source, table and config entry.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float) -> str:
    return f"{value:g}"


def _rules(column: Column) -> str:
    rules = []
    if column.min_value is not None and column.max_value is not None:
        rules.append(f"{_number(column.min_value)} to {_number(column.max_value)}")
    elif column.min_value is not None:
        rules.append(f"≥ {_number(column.min_value)}")
    elif column.max_value is not None:
        rules.append(f"≤ {_number(column.max_value)}")
    if column.currency_column:
        rules.append(f"amount in the currency of `{column.currency_column}`")
    if column.is_currency:
        rules.append("ISO 4217 code")
    if column.references:
        rules.append(f"references `{column.references}`")
    if column.first_of_month:
        rules.append("the first day of a month")
    if column.values:
        rules.append("one of " + ", ".join(f"`{v}`" for v in column.values))
    if column.vocabulary:
        rules.append(f"one of {VOCABULARIES[column.vocabulary]} (`config/business.yml`)")
    if column.not_future:
        rules.append("not in the future")
    if column.not_before:
        rules.append(f"not before `{column.not_before}`")
    return "; ".join(rules)


def _table_section(table: Table) -> list[str]:
    lines = [f"### `{table.source}.{table.name}`", ""]
    if table.description:
        lines += [table.description, ""]
    key = ", ".join(f"`{k}`" for k in table.primary_key)
    lines += [
        f"- Folder: `<landing>/{table.source}/{table.name}/`, usually exported as "
        f"{table.file_format}",
        f"- {'Optional' if table.optional else 'Required'} table",
        f"- Primary key: {key}",
    ]
    if table.updated_at:
        lines.append(f"- Versions: several per key, the latest `{table.updated_at}` wins")
    lines += [
        "",
        "| Column | Type | Required | Rules | Description |",
        "|---|---|---|---|---|",
    ]
    for c in table.columns:
        lines.append(
            f"| `{c.name}` | {c.type} | {'yes' if c.required else 'no'} | "
            f"{_cell(_rules(c))} | {_cell(c.description)} |"
        )
    if table.agreements:
        lines += ["", "Rules across tables:", ""]
        for a in table.agreements:
            lines.append(
                f"- `{' -> '.join(a.left)}` = `{' -> '.join(a.right)}`: {a.reason} "
                f"(reported on `{a.column}`)"
            )
    return [*lines, ""]


def _overview() -> list[str]:
    lines = [
        "## Tables",
        "",
        "| Table | Required | Primary key | Versions by | Usual format |",
        "|---|---|---|---|---|",
    ]
    for t in TABLES:
        key = ", ".join(f"`{k}`" for k in t.primary_key)
        versions = f"`{t.updated_at}`" if t.updated_at else ""
        anchor = f"{t.source}{t.name}"  # GitHub's anchor of the heading `source.table`
        lines.append(
            f"| [`{t.source}.{t.name}`](#{anchor}) | {'no' if t.optional else 'yes'} | {key} | "
            f"{versions} | {t.file_format} |"
        )
    return [*lines, ""]


def _currencies() -> list[str]:
    by_units: dict[int, list[str]] = defaultdict(list)
    for code, units in sorted(MINOR_UNITS.items()):
        by_units[units].append(code)
    names = {0: "no decimals", 1: "one decimal", 3: "three decimals", 4: "four decimals"}
    lines = [
        "## Currencies",
        "",
        f"Currency columns hold ISO 4217 codes ({len(MINOR_UNITS)} are known, from "
        "`flows/ingest/currencies.py`).",
        "Most have two decimals; these have another number:",
        "",
        "| Decimals | Currencies |",
        "|---|---|",
    ]
    for units in sorted(u for u in by_units if u != 2):
        label = names.get(units, f"{units} decimals")
        lines.append(f"| {units} ({label}) | {', '.join(by_units[units])} |")
    return [*lines, ""]


def render() -> str:
    """The whole document, as it must be committed."""
    intro = INTRO.format(command=COMMAND, tolerance=future_tolerance_text())
    lines = [intro.rstrip("\n"), "", *_currencies(), *_overview()]
    for source in SOURCES:
        lines += [f"## {SOURCE_TITLES.get(source, source)} (`{source}`)", ""]
        for t in TABLES:
            if t.source == source:
                lines += _table_section(t)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    args = parser.parse_args(argv)
    text = render()
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else None
    if args.check:
        if current != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
