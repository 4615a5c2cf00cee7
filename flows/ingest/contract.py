"""The extract contract: every table the pipeline accepts from the CRM, billing and usage sources.

One place says which tables exist, their primary keys, their columns and types, and which
tables may be absent. The loader enforces it; the demo generator writes to it;
`docs/extract-contract.md` describes it for people.

Types are DuckDB types. Timestamps are UTC (`TIMESTAMP`, written as ISO 8601, with or without
`Z`; an offset such as `+02:00` is converted to UTC, a value without one is taken as UTC).
Amounts are decimals in the currency named by the row's `currency` column (ISO 4217). Text
values are at most `MAX_TEXT_LENGTH` characters; numbers are finite (no NaN, no infinity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

MAX_TEXT_LENGTH = 10_000  # characters in one text value (a name, an id, an e-mail address)

# What a TIMESTAMP or DATE value must look like before it is read (DuckDB's own casts also
# take "epoch", "infinity", "PST", years beyond 9999 or "+25:00", which are not ISO 8601).
# ISO 8601 date and time, optional fraction, then Z or an offset between -14:00 and +14:00.
TIMESTAMP_PATTERN = (
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-](0\d|1[0-4])(:?[0-5]\d)?)?"
)
# A calendar date; a midnight time (UTC, when an offset is given) is tolerated: Parquet writers
# and PostgreSQL timestamps often store dates that way. Any other time of day is not a date.
DATE_PATTERN = r"\d{4}-\d{2}-\d{2}([T ]00:00(:00(\.0+)?)?(Z|[+-]00(:?00)?)?)?"
# A whole number as text: digits with an optional sign, and an optional fraction of zeros only
# ("120", "+120", "120.0", as spreadsheets and pandas write whole numbers). "120.5", "1e2",
# "1,200" and "12 000" are not whole numbers: they are rejected, never rounded or guessed.
INTEGER_PATTERN = r"[+-]?\d+(\.0*)?"
# A DECIMAL as text: plain digits and a decimal point ("12.50", ".5"); no exponent (DuckDB would
# round "1.5e-3" to 0.00) and no digit separators ("1_000", "1,000").
DECIMAL_PATTERN = r"[+-]?(\d+\.?\d*|\.\d+)"
# A DOUBLE as text: a decimal number with an optional exponent, or inf / infinity / nan (which
# the finiteness rule then rejects); no digit separators (DuckDB alone reads "1_000" as 1000).
DOUBLE_PATTERN = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(?i:inf|infinity|nan)"
# How far past the wall clock of the load a timestamp or date of a `not_future` column may lie
# (clocks of exporting systems drift, and a business's "today" may be tomorrow in UTC): a row
# dated later than the load's clock plus this is rejected (an account version dated 9999-12-31
# would otherwise win over every real correction for good).
FUTURE_TOLERANCE = timedelta(days=1)


def future_tolerance_text() -> str:
    """FUTURE_TOLERANCE for people: "1 day", "2 days", "6 hours"."""
    hours = int(FUTURE_TOLERANCE.total_seconds() // 3600)
    n, unit = (hours // 24, "day") if hours % 24 == 0 else (hours, "hour")
    return f"{n} {unit}{'s' if n != 1 else ''}"


# A file that restates rows loaded before says so in its name: `<anything>_correction.<ext>`
# (e.g. usage_daily_2026-04_correction.parquet). Its rows may replace loaded rows of a table
# without versions (a late usage correction); every restated row is logged with both values.
# Anywhere else a loaded row that comes again with other values is rejected: history is not
# rewritten by an export that happens to repeat a row.
CORRECTION_PATTERN = r"_correction\.[A-Za-z0-9.]+$"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = True
    description: str = ""
    min_value: float | None = None  # smallest value allowed (e.g. 0 for amounts)
    max_value: float | None = None
    references: str | None = None  # "source.table.column" the value must exist in
    currency_column: str | None = None  # amount column: the column naming its currency
    is_currency: bool = False  # an ISO 4217 code (flows/ingest/currencies.py)
    not_before: str | None = None  # another column of the row this value may not precede
    values: tuple[str, ...] = ()  # the only values allowed (exact), when not empty
    # the only values allowed are the names a business declares (VOCABULARIES), e.g. its metrics
    vocabulary: str | None = None
    first_of_month: bool = False  # a DATE that must be the first day of a month
    # a TIMESTAMP or DATE of something that has happened (an event, a version, a measurement):
    # not later than the load's clock plus FUTURE_TOLERANCE. False for dates that may lie
    # ahead by nature (a scheduled start, cancellation or plan change, a due date).
    not_future: bool = False


@dataclass(frozen=True)
class Unique:
    """Columns whose values no two different keys of a table may share, and why."""

    columns: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Agreement:
    """Two values reached from one row that must be equal (a rule across tables).

    Each side is a path: reference columns of this row (and of the rows they reach) followed in
    order, then the column compared, e.g. ("plan_id", "product_id") is the product of the row's
    plan; ("currency",) is the row's own currency. A side that does not resolve (an empty value,
    a missing parent) is not compared: references are checked on their own.
    """

    left: tuple[str, ...]
    right: tuple[str, ...]
    reason: str

    @property
    def column(self) -> str:
        """The column of this row the problem is reported on."""
        return self.left[0]


@dataclass(frozen=True)
class Table:
    source: str
    name: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    optional: bool = False
    file_format: str = "csv"
    description: str = ""
    updated_at: str | None = None  # column that orders versions of one key, if any
    unique: tuple[Unique, ...] = ()  # checked against this load and everything loaded before
    agreements: tuple[Agreement, ...] = ()  # rules across tables, checked against raw
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def raw_relation(self) -> str:
        """Name of the raw table in the warehouse: raw.<source>__<table>."""
        return f"{self.source}__{self.name}"

    @property
    def column_types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def _c(
    name: str,
    type_: str,
    required: bool = True,
    description: str = "",
    **checks: Any,
) -> Column:
    return Column(name, type_, required, description, **checks)


ACCOUNT = "crm.accounts.account_id"
PRICING_MODELS = ("per_seat", "flat", "usage")
CUSTOMER = "billing.customers.customer_id"


TABLES: tuple[Table, ...] = (
    # --- CRM -------------------------------------------------------------------------------
    Table(
        "crm",
        "accounts",
        ("account_id",),
        (
            _c("account_id", "VARCHAR", description="CRM account id; the account key everywhere"),
            _c("account_name", "VARCHAR"),
            _c("industry", "VARCHAR", False),
            _c("country", "VARCHAR", False, "ISO 3166-1 alpha-2"),
            _c("employee_count", "INTEGER", False, min_value=0),
            _c(
                "segment",
                "VARCHAR",
                False,
                "the business's own segments (e.g. smb | mid_market | enterprise); empty: "
                "unknown (touch tiers then go by MRR; the model treats it as missing)",
            ),
            _c("owner_name", "VARCHAR", False, "account owner (sales or CSM)"),
            _c("owner_email", "VARCHAR", False),
            _c("created_at", "TIMESTAMP", not_future=True),
            _c("updated_at", "TIMESTAMP", not_future=True),
        ),
        updated_at="updated_at",
        description="One row per customer account in the CRM.",
    ),
    Table(
        "crm",
        "contacts",
        ("contact_id",),
        (
            _c("contact_id", "VARCHAR"),
            _c("account_id", "VARCHAR", references=ACCOUNT),
            _c("first_name", "VARCHAR", False),
            _c("last_name", "VARCHAR", False),
            _c("email", "VARCHAR", False),
            _c("title", "VARCHAR", False),
            _c("is_primary", "BOOLEAN", False),
            _c("created_at", "TIMESTAMP", not_future=True),
            _c("updated_at", "TIMESTAMP", not_future=True),
        ),
        optional=True,
        updated_at="updated_at",
        description="People at customer accounts. Personal data: hashed or dropped in staging.",
    ),
    Table(
        "crm",
        "opportunities",
        ("opportunity_id",),
        (
            _c("opportunity_id", "VARCHAR"),
            _c("account_id", "VARCHAR", references=ACCOUNT),
            _c(
                "opportunity_type",
                "VARCHAR",
                description="new_business | upsell | cross_sell | renewal",
            ),
            _c("stage", "VARCHAR", description="open | closed_won | closed_lost"),
            _c(
                "amount",
                "DECIMAL(18,2)",
                False,
                "in `currency`",
                min_value=0,
                currency_column="currency",
            ),
            _c("currency", "VARCHAR", False, is_currency=True),
            _c("created_at", "TIMESTAMP", not_future=True),
            _c(
                "closed_at",
                "TIMESTAMP",
                False,
                "closed, or (while open) the expected close: may lie ahead",
            ),
            _c("updated_at", "TIMESTAMP", not_future=True),
        ),
        optional=True,
        updated_at="updated_at",
    ),
    Table(
        "crm",
        "activities",
        ("activity_id",),
        (
            _c("activity_id", "VARCHAR"),
            _c("account_id", "VARCHAR", references=ACCOUNT),
            _c("activity_type", "VARCHAR", description="email | call | meeting | qbr"),
            _c("occurred_at", "TIMESTAMP", not_future=True),
        ),
        optional=True,
    ),
    Table(
        "crm",
        "support_tickets",
        ("ticket_id",),
        (
            _c("ticket_id", "VARCHAR"),
            _c("account_id", "VARCHAR", references=ACCOUNT),
            _c("priority", "VARCHAR", description="low | normal | high | urgent"),
            _c("category", "VARCHAR", False),
            _c("opened_at", "TIMESTAMP", not_future=True),
            _c(
                "closed_at",
                "TIMESTAMP",
                False,
                "empty while the ticket is open",
                not_future=True,
            ),
            _c("updated_at", "TIMESTAMP", not_future=True),
        ),
        optional=True,
        updated_at="updated_at",
    ),
    Table(
        "crm",
        "nps_responses",
        ("response_id",),
        (
            _c("response_id", "VARCHAR"),
            _c("account_id", "VARCHAR", references=ACCOUNT),
            _c("contact_id", "VARCHAR", False),
            _c("score", "INTEGER", description="0-10", min_value=0, max_value=10),
            _c("responded_at", "TIMESTAMP", not_future=True),
        ),
        optional=True,
    ),
    # --- Billing ---------------------------------------------------------------------------
    Table(
        "billing",
        "products",
        ("product_id",),
        (
            _c("product_id", "VARCHAR"),
            _c("product_name", "VARCHAR"),
            _c("product_family", "VARCHAR", description="core | addon"),
        ),
    ),
    Table(
        "billing",
        "plans",
        ("plan_id",),
        (
            _c("plan_id", "VARCHAR"),
            _c("product_id", "VARCHAR", references="billing.products.product_id"),
            _c("plan_name", "VARCHAR"),
            _c(
                "tier_rank",
                "INTEGER",
                description="1 = entry tier; higher = higher tier",
                min_value=1,
            ),
            _c(
                "list_price",
                "DECIMAL(18,2)",
                description="monthly list price in `currency`: per unit (seat) for per_seat "
                "plans, for the whole plan for flat ones, the committed base for usage ones",
                min_value=0,
                currency_column="currency",
            ),
            _c(
                "currency",
                "VARCHAR",
                description="ISO 4217 currency of list_price",
                is_currency=True,
            ),
            _c(
                "pricing_model",
                "VARCHAR",
                False,
                "per_seat (price x quantity) | flat (one price, limits bundled) | usage (a base "
                "plus overage); empty: per_seat",
                values=PRICING_MODELS,
            ),
            _c(
                "billing_period_months",
                "INTEGER",
                False,
                "the billing period the plan is sold on (1 monthly, 12 annual) when plans differ "
                "by period; empty: any period",
                min_value=1,
                max_value=60,
            ),
        ),
        description="The price list. Plan limits are in billing.plan_limits.",
    ),
    Table(
        "billing",
        "plan_limits",
        ("plan_id", "metric"),
        (
            _c("plan_id", "VARCHAR", references="billing.plans.plan_id"),
            _c(
                "metric",
                "VARCHAR",
                description="a usage metric declared with a limit_period in config/business.yml",
                vocabulary="limited_usage_metrics",
            ),
            _c(
                "limit_value",
                "DOUBLE",
                description="the limit: 0 is a limit (nothing included), not a missing value",
                min_value=0,
            ),
            _c(
                "per_unit",
                "BOOLEAN",
                False,
                "true: the limit is per unit bought (seats on a per-seat plan: limit_value x "
                "quantity); empty: false, the limit is per subscription",
            ),
            _c(
                "overage_price",
                "DECIMAL(18,6)",
                False,
                "usage-based plans: the price of one unit of the metric beyond the limit, in the "
                "plan's currency; empty: no overage (the limit is a cap)",
                min_value=0,
            ),
        ),
        optional=True,
        description=(
            "How far each plan lets a usage metric go. An account's effective limit on a metric "
            "is its core plan's limit plus the limits of the add-ons it holds (each x quantity "
            "when per_unit); a metric its core plan does not limit is unlimited. Absent: no "
            "limits, so no utilisation features."
        ),
    ),
    Table(
        "billing",
        "customers",
        ("customer_id",),
        (
            _c("customer_id", "VARCHAR"),
            _c(
                "crm_account_id",
                "VARCHAR",
                description="the CRM account this customer bills",
                references=ACCOUNT,
            ),
            _c("currency", "VARCHAR", description="ISO 4217 billing currency", is_currency=True),
            _c("created_at", "TIMESTAMP", not_future=True),
            _c("updated_at", "TIMESTAMP", not_future=True),
        ),
        updated_at="updated_at",
    ),
    Table(
        "billing",
        "subscriptions",
        ("subscription_id",),
        (
            _c("subscription_id", "VARCHAR"),
            _c("customer_id", "VARCHAR", references=CUSTOMER),
            _c("product_id", "VARCHAR", references="billing.products.product_id"),
            _c(
                "billing_period_months",
                "INTEGER",
                description="1 = monthly, 12 = annual",
                min_value=1,
                max_value=60,
            ),
            _c(
                "term_months",
                "INTEGER",
                description="contract term; renews every term",
                min_value=1,
                max_value=120,
            ),
            _c(
                "started_at",
                "TIMESTAMP",
                description="may lie ahead (a subscription signed to start later)",
            ),
            _c(
                "canceled_at",
                "TIMESTAMP",
                False,
                "end of service; empty while active; not before started_at; may lie ahead (a "
                "cancellation at the end of the term)",
                not_before="started_at",
            ),
            _c("updated_at", "TIMESTAMP", not_future=True),
        ),
        updated_at="updated_at",
    ),
    Table(
        "billing",
        "subscription_changes",
        ("change_id",),
        (
            _c("change_id", "VARCHAR"),
            _c("subscription_id", "VARCHAR", references="billing.subscriptions.subscription_id"),
            _c(
                "effective_at",
                "TIMESTAMP",
                description="from this instant the plan/quantity hold; may lie ahead (a change "
                "scheduled for the renewal)",
            ),
            _c("plan_id", "VARCHAR", references="billing.plans.plan_id"),
            _c("quantity", "INTEGER", description="seats bought", min_value=0),
            _c(
                "unit_amount",
                "DECIMAL(18,2)",
                description="price per seat per billing period, in `currency`",
                min_value=0,
                currency_column="currency",
            ),
            _c("currency", "VARCHAR", is_currency=True),
        ),
        unique=(
            Unique(
                ("subscription_id", "effective_at"),
                "two versions of one subscription cannot take effect at the same instant",
            ),
        ),
        agreements=(
            Agreement(
                ("plan_id", "product_id"),
                ("subscription_id", "product_id"),
                "the plan of a subscription change must be a plan of the subscription's product",
            ),
            Agreement(
                ("currency",),
                ("subscription_id", "customer_id", "currency"),
                "a subscription is priced in its customer's billing currency",
            ),
        ),
        description=(
            "Versions of each subscription: the first row is the initial plan. Two versions of "
            "one subscription may not take effect at the same instant (which one holds would be "
            "a guess)."
        ),
    ),
    Table(
        "billing",
        "invoices",
        ("invoice_id",),
        (
            _c("invoice_id", "VARCHAR"),
            _c("customer_id", "VARCHAR", references=CUSTOMER),
            _c(
                "subscription_id",
                "VARCHAR",
                False,
                references="billing.subscriptions.subscription_id",
            ),
            _c("issued_at", "TIMESTAMP", not_future=True),
            _c("due_at", "TIMESTAMP", description="may lie ahead"),
            _c("paid_at", "TIMESTAMP", False, not_future=True),
            _c("amount_due", "DECIMAL(18,2)", min_value=0, currency_column="currency"),
            _c("currency", "VARCHAR", is_currency=True),
            _c("status", "VARCHAR", description="paid | open | void | uncollectible"),
            _c("updated_at", "TIMESTAMP", not_future=True),
        ),
        agreements=(
            Agreement(
                ("subscription_id", "customer_id"),
                ("customer_id",),
                "an invoice of a subscription is billed to the subscription's customer",
            ),
            Agreement(
                ("currency",),
                ("customer_id", "currency"),
                "an invoice is in its customer's billing currency",
            ),
        ),
        optional=True,
        updated_at="updated_at",
    ),
    Table(
        "billing",
        "exchange_rates",
        ("rate_month", "currency"),
        (
            _c(
                "rate_month",
                "DATE",
                description="the month the rate holds for, as its first day; may lie ahead (a "
                "budget rate)",
                first_of_month=True,
            ),
            _c("currency", "VARCHAR", is_currency=True),
            _c(
                "rate_to_usd",
                "DOUBLE",
                description="US dollars per one unit of `currency` in that month (USD is the "
                "pivot: any reporting currency converts through it)",
                min_value=1e-9,
            ),
        ),
        optional=True,
        description=(
            "Monthly exchange rates. A subscription version's amount is converted at the rate "
            "of the month it took effect (the booked rate, so MRR does not move with exchange "
            "rates); a month or currency without a row uses the static rate of "
            "dbt_project/seeds/fx_rates.csv. Absent: the static rates only."
        ),
    ),
    # --- Product usage -----------------------------------------------------------------------
    Table(
        "usage",
        "usage_daily",
        ("account_id", "usage_date", "metric"),
        (
            _c("account_id", "VARCHAR", references=ACCOUNT),
            _c("usage_date", "DATE", not_future=True),
            _c(
                "metric",
                "VARCHAR",
                description="one of the usage metrics declared in config/business.yml",
                vocabulary="usage_metrics",
            ),
            _c("value", "DOUBLE", min_value=0, max_value=1e12),
        ),
        file_format="parquet",
        description="One row per account per day per metric, exported daily or monthly.",
    ),
)

TABLES_BY_KEY: dict[str, Table] = {f"{t.source}.{t.name}": t for t in TABLES}
SOURCES: tuple[str, ...] = ("crm", "billing", "usage")
# Names a business declares, by vocabulary (models/business.py): the loader allows exactly these
VOCABULARIES: dict[str, str] = {
    "usage_metrics": "the usage metrics declared in the business declaration",
    "limited_usage_metrics": "the usage metrics declared with a limit_period",
}


def table(source: str, name: str) -> Table:
    try:
        return TABLES_BY_KEY[f"{source}.{name}"]
    except KeyError:
        known = ", ".join(sorted(TABLES_BY_KEY))
        raise KeyError(f"no contract table {source}.{name}; known tables: {known}") from None
