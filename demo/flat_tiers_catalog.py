"""Reference data of the flat-tier demo business: a Japanese CRM vendor's price list, limits,
usage metrics and names. Static and fake.

Kizuna CRM is one core product sold as five flat-priced tiers, each bundling a seat limit and
monthly quotas, on monthly, 6-monthly and annual terms, plus two add-ons sold in packs that raise
a limit. Prices are in yen (whole yen). The generator indexes these tuples with numpy arrays,
so their order is part of the output: append, do not reorder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo.common import extract_table, plan_limits_table
from demo.extracts import Tables

CURRENCY = "JPY"

# --- terms: the billing period is the contract term (a plan row per tier and period) ----------
PERIODS: tuple[int, ...] = (1, 6, 12)  # months
PERIOD_NAMES: tuple[str, ...] = ("monthly", "6-monthly", "annual")
PERIOD_SUFFIX: tuple[str, ...] = ("m", "6m", "y")
PERIOD_PRICE_FACTOR: tuple[float, ...] = (1.0, 0.95, 0.85)  # monthly price paid per period

# --- usage metrics (declared in config/examples/flat_tiers/business.yml) -------------------------
# The metrics a plan limits, in the order of the limit arrays below.
SEATS, RECORDS, EMAILS, API, WORKFLOWS = range(5)
LIMITED_METRICS: tuple[str, ...] = (
    "active_seats",  # distinct users active on a day; limit: seats in the tier (day)
    "records_stored",  # contacts and companies held; limit: records (held)
    "marketing_emails",  # marketing e-mails; limit: a monthly send quota (month)
    "api_requests",  # limit: a monthly quota; 0 on the entry tier (no API access)
    "workflow_runs",  # automation runs; limit: a monthly quota; 0 on the entry tier
)
# Counts of product events: (name, events per active seat per working day)
ACTIVITY_METRICS: tuple[tuple[str, float], ...] = (
    ("contacts_created", 1.6),
    ("companies_created", 0.35),
    ("deals_created", 0.3),
    ("deals_won", 0.07),
    ("meetings_booked", 0.45),
    ("calls_logged", 1.8),
    ("tasks_completed", 3.0),
    ("notes_added", 2.2),
    ("quotes_sent", 0.12),
    ("reports_viewed", 1.1),
)
FORMS_METRIC = "forms_submitted"  # web-form submissions, about 1 per 150 e-mails sent
MODULES_METRIC = "modules_used"  # distinct product modules used on a day (1-12)
INTEGRATIONS_METRIC = "integrations_connected"  # apps connected (a level, no limit)
MAX_MODULES = 12

# Every metric in the order the generator writes a day's rows.
USAGE_METRICS: tuple[str, ...] = (
    *LIMITED_METRICS,
    *(m for m, _ in ACTIVITY_METRICS),
    FORMS_METRIC,
    MODULES_METRIC,
    INTEGRATIONS_METRIC,
)
# Sum metrics: a day without events has no row (a missing day counts as 0 in a sum).
SUM_METRICS: frozenset[str] = frozenset(
    {
        "marketing_emails",
        "api_requests",
        "workflow_runs",
        FORMS_METRIC,
        *(m for m, _ in ACTIVITY_METRICS),
    }
)


@dataclass(frozen=True)
class Tier:
    name: str
    monthly_price: int  # yen a month on a monthly term
    limits: tuple[float, ...]  # per LIMITED_METRICS


TIERS: tuple[Tier, ...] = (
    Tier("Lite", 9_800, (3, 5_000, 2_000, 0, 0)),
    Tier("Standard", 29_800, (10, 30_000, 15_000, 50_000, 1_000)),
    Tier("Professional", 79_800, (25, 100_000, 50_000, 250_000, 10_000)),
    Tier("Business", 198_000, (60, 300_000, 150_000, 1_000_000, 50_000)),
    Tier("Enterprise", 480_000, (200, 1_000_000, 500_000, 5_000_000, 250_000)),
)
N_TIERS = len(TIERS)


@dataclass(frozen=True)
class AddOn:
    product_id: str
    name: str
    monthly_price: int  # yen a month per pack on a monthly term
    metric: int  # index into LIMITED_METRICS
    pack: float  # limit added per pack


ADDONS: tuple[AddOn, ...] = (
    AddOn("prod_kizuna_data_pack", "Kizuna Data Pack", 4_000, RECORDS, 20_000),
    AddOn("prod_kizuna_mail_pack", "Kizuna Mail Pack", 3_000, EMAILS, 20_000),
)

CORE_PRODUCT = ("prod_kizuna_crm", "Kizuna CRM")
PRODUCT_IDS: tuple[str, ...] = (CORE_PRODUCT[0], *(a.product_id for a in ADDONS))


def period_price(monthly: int, period: int) -> int:
    """Monthly list price on a billing period, whole yen rounded to tens."""
    factor = PERIOD_PRICE_FACTOR[PERIODS.index(period)]
    return int(round(monthly * factor / 10.0) * 10)


@dataclass(frozen=True)
class Plan:
    plan_id: str
    product_id: str
    plan_name: str
    tier_rank: int
    list_price: int  # yen a month on its billing period
    pricing_model: str
    period: int  # billing period = term, months
    limits: tuple[tuple[str, float, bool], ...]  # (metric, limit_value, per_unit)


# One plan per tier and period (core), then one per add-on and period: plan index =
# (tier - 1) * 3 + period index for the core, 15 + add-on * 3 + period index for add-ons.
PLANS: tuple[Plan, ...] = (
    *(
        Plan(
            f"plan_kizuna_{t.name.lower()}_{suffix}",
            CORE_PRODUCT[0],
            f"{CORE_PRODUCT[1]} {t.name} ({period_name})",
            rank,
            period_price(t.monthly_price, period),
            "flat",
            period,
            tuple((m, float(v), False) for m, v in zip(LIMITED_METRICS, t.limits, strict=True)),
        )
        for rank, t in enumerate(TIERS, start=1)
        for period, period_name, suffix in zip(PERIODS, PERIOD_NAMES, PERIOD_SUFFIX, strict=True)
    ),
    *(
        Plan(
            f"plan_{a.product_id.removeprefix('prod_')}_{suffix}",
            a.product_id,
            f"{a.name} ({period_name})",
            1,
            period_price(a.monthly_price, period),
            "per_seat",  # price x quantity: the quantity is the number of packs
            period,
            ((LIMITED_METRICS[a.metric], a.pack, True),),
        )
        for a in ADDONS
        for period, period_name, suffix in zip(PERIODS, PERIOD_NAMES, PERIOD_SUFFIX, strict=True)
    ),
)
PLAN_IDS: tuple[str, ...] = tuple(p.plan_id for p in PLANS)

# arrays the simulation indexes
N_ADDONS = len(ADDONS)
PERIOD_ARRAY = np.array(PERIODS)
TIER_LIMITS = np.array([[np.nan] * len(LIMITED_METRICS)] + [list(t.limits) for t in TIERS])
PACK = np.array([a.pack for a in ADDONS])  # limit added per pack
ADDON_METRIC = np.array([a.metric for a in ADDONS])
PLAN_PRICE = np.array([p.list_price for p in PLANS], np.float64)


def price_list() -> Tables:
    """billing.products, billing.plans and billing.plan_limits of Kizuna CRM."""
    yield (
        "billing",
        "products",
        extract_table(
            "billing",
            "products",
            {
                "product_id": list(PRODUCT_IDS),
                "product_name": [CORE_PRODUCT[1], *(a.name for a in ADDONS)],
                "product_family": ["core", *("addon" for _ in ADDONS)],
            },
        ),
    )
    yield (
        "billing",
        "plans",
        extract_table(
            "billing",
            "plans",
            {
                "plan_id": list(PLAN_IDS),
                "product_id": [p.product_id for p in PLANS],
                "plan_name": [p.plan_name for p in PLANS],
                "tier_rank": [p.tier_rank for p in PLANS],
                "list_price": [p.list_price for p in PLANS],
                "currency": [CURRENCY for _ in PLANS],
                "pricing_model": [p.pricing_model for p in PLANS],
                "billing_period_months": [p.period for p in PLANS],
            },
        ),
    )
    limits = [(p.plan_id, *limit) for p in PLANS for limit in p.limits]
    yield "billing", "plan_limits", plan_limits_table(limits)


# --- customers -----------------------------------------------------------------------------------
TIER_MIX: tuple[float, ...] = (0.26, 0.34, 0.22, 0.12, 0.06)  # first tier of new customers
TERM_MIX: tuple[tuple[float, ...], ...] = (  # (monthly, 6-monthly, annual) by first tier
    (0.7, 0.15, 0.15),
    (0.55, 0.15, 0.3),
    (0.35, 0.15, 0.5),
    (0.2, 0.1, 0.7),
    (0.1, 0.05, 0.85),
)

# country code, share (None: the CRM has no country), legal suffix index
COUNTRIES: tuple[tuple[str | None, float, int], ...] = (
    ("JP", 0.80, 0),
    (None, 0.12, 0),
    ("SG", 0.03, 1),
    ("TW", 0.02, 2),
    ("KR", 0.015, 2),
    ("US", 0.015, 3),
)
SUFFIXES: tuple[str, ...] = ("K.K.", "Pte. Ltd.", "Co., Ltd.", "Inc.")

INDUSTRIES: tuple[str, ...] = (
    "Manufacturing",
    "IT Services",
    "Retail",
    "Real Estate",
    "Staffing",
    "Construction",
    "Healthcare",
    "Education",
    "Wholesale",
    "Professional Services",
)

NAME_WORDS_A: tuple[str, ...] = (
    "Sakura", "Fuji", "Hikari", "Midori", "Aoi", "Asahi", "Tsubasa", "Kaze", "Yamato", "Hoshi",
    "Minato", "Sora", "Mirai", "Nami", "Kita", "Higashi", "Nishi", "Minami", "Taiyo", "Kaede",
)  # fmt: skip
NAME_WORDS_B: tuple[str, ...] = (
    "dai", "yama", "kawa", "mori", "hara", "shima", "saki", "oka", "tani", "no",
)  # fmt: skip
NAME_WORDS_C: tuple[str, ...] = (
    "Systems", "Trading", "Logistics", "Foods", "Engineering", "Consulting", "Realty",
    "Medical", "Electronics", "Design", "Works", "Solutions", "Partners", "Holdings",
)  # fmt: skip
# (display, ascii for e-mail)
FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("翔太", "shota"), ("陽菜", "hina"), ("大輝", "daiki"), ("美咲", "misaki"), ("蓮", "ren"),
    ("結衣", "yui"), ("健一", "kenichi"), ("由美", "yumi"), ("拓也", "takuya"), ("彩", "aya"),
    ("直樹", "naoki"), ("恵", "megumi"), ("誠", "makoto"), ("真由美", "mayumi"), ("悠斗", "yuto"),
    ("Wei", "wei"), ("Ji-woo", "jiwoo"), ("Daniel", "daniel"),
)  # fmt: skip
LAST_NAMES: tuple[tuple[str, str], ...] = (
    ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"),
    ("伊藤", "ito"), ("渡辺", "watanabe"), ("山本", "yamamoto"), ("中村", "nakamura"),
    ("小林", "kobayashi"), ("加藤", "kato"), ("吉田", "yoshida"), ("山田", "yamada"),
    ("Tan", "tan"), ("Kim", "kim"), ("Lin", "lin"),
)  # fmt: skip
TITLES: tuple[str, ...] = (
    "営業部長", "営業企画課 課長", "マーケティング部 マネージャー", "情報システム部",
    "代表取締役", "カスタマーサクセス担当", "経営企画室", "Sales Manager", "CRM管理者",
)  # fmt: skip

# account owners: (name, email, high-touch book)
OWNERS: tuple[tuple[str, str, bool], ...] = (
    ("森 さくら", "sakura.mori@kizuna-crm.example", True),
    ("岡田 健", "ken.okada@kizuna-crm.example", True),
    ("石井 玲奈", "rena.ishii@kizuna-crm.example", False),
    ("松本 大地", "daichi.matsumoto@kizuna-crm.example", False),
    ("井上 葵", "aoi.inoue@kizuna-crm.example", False),
)
