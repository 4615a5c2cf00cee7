"""Reference data for the demo generator: products, plans, countries, names.

Everything here is static and fake. The generator indexes these tuples with numpy arrays, so
their order is part of the output: append, do not reorder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    product_id: str
    product_name: str
    family: str  # core | addon


@dataclass(frozen=True)
class Plan:
    plan_id: str
    product: int  # index into PRODUCTS
    plan_name: str
    tier_rank: int
    list_price_usd: float  # per seat per month
    storage_limit_gb: float | None  # per account; None = unlimited
    api_calls_limit: float | None  # per account per month; None = unlimited


CORE = 0
MARKETING, SERVICE, ANALYTICS, CPQ = 1, 2, 3, 4
ADDONS: tuple[int, ...] = (MARKETING, SERVICE, ANALYTICS, CPQ)

PRODUCTS: tuple[Product, ...] = (
    Product("prod_core_crm", "Core CRM", "core"),
    Product("prod_marketing_automation", "Marketing Automation", "addon"),
    Product("prod_service_desk", "Service Desk", "addon"),
    Product("prod_analytics", "Analytics", "addon"),
    Product("prod_cpq", "CPQ", "addon"),
)

# Add-ons usually bought together: holding one makes the other a cross-sell candidate.
COMPANION: dict[int, int] = {MARKETING: ANALYTICS, ANALYTICS: MARKETING, SERVICE: CPQ, CPQ: SERVICE}

PLANS: tuple[Plan, ...] = (
    Plan("plan_core_starter", CORE, "Core CRM Starter", 1, 25.0, 100.0, 250_000.0),
    Plan("plan_core_growth", CORE, "Core CRM Growth", 2, 50.0, 1_000.0, 2_500_000.0),
    Plan("plan_core_enterprise", CORE, "Core CRM Enterprise", 3, 90.0, 10_000.0, None),
    Plan(
        "plan_marketing_standard", MARKETING, "Marketing Automation Standard", 1, 30.0, None, None
    ),
    Plan(
        "plan_marketing_professional",
        MARKETING,
        "Marketing Automation Professional",
        2,
        60.0,
        None,
        None,
    ),
    Plan("plan_service_standard", SERVICE, "Service Desk Standard", 1, 20.0, None, None),
    Plan("plan_service_professional", SERVICE, "Service Desk Professional", 2, 40.0, None, None),
    Plan("plan_analytics", ANALYTICS, "Analytics", 1, 15.0, None, None),
    Plan("plan_cpq", CPQ, "CPQ", 1, 35.0, None, None),
)

CORE_TIERS = 3
# PLAN_INDEX[product][tier_rank - 1] -> index into PLANS
PLAN_INDEX: tuple[tuple[int, ...], ...] = tuple(
    tuple(i for i, p in enumerate(PLANS) if p.product == prod) for prod in range(len(PRODUCTS))
)

SEGMENTS: tuple[str, ...] = ("smb", "mid_market", "enterprise")
SEGMENT_SHARE: tuple[float, ...] = (0.6, 0.3, 0.1)
SEATS_RANGE: tuple[tuple[int, int], ...] = ((3, 20), (20, 150), (150, 2000))
EMPLOYEES_RANGE: tuple[tuple[int, int], ...] = ((10, 250), (250, 2500), (2500, 60000))
# initial core tier mix per segment (starter, growth, enterprise)
TIER_MIX: tuple[tuple[float, ...], ...] = ((0.7, 0.27, 0.03), (0.3, 0.55, 0.15), (0.05, 0.35, 0.6))

CURRENCIES: tuple[str, ...] = ("USD", "EUR", "GBP", "JPY")
FX_PER_USD: tuple[float, ...] = (1.0, 0.92, 0.79, 150.0)
CURRENCY_DECIMALS: tuple[int, ...] = (2, 2, 2, 0)

# country code, share, currency index, legal suffix
COUNTRIES: tuple[tuple[str, float, int, str], ...] = (
    ("US", 0.40, 0, "Inc."),
    ("GB", 0.12, 2, "Ltd"),
    ("DE", 0.12, 1, "GmbH"),
    ("FR", 0.08, 1, "SAS"),
    ("NL", 0.06, 1, "B.V."),
    ("JP", 0.06, 3, "K.K."),
    ("CA", 0.04, 0, "Inc."),
    ("AU", 0.04, 0, "Pty Ltd"),
    ("ES", 0.04, 1, "S.L."),
    ("SE", 0.04, 1, "AB"),
)

INDUSTRIES: tuple[str, ...] = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Media",
    "Professional Services",
    "Logistics",
    "Real Estate",
)

NAME_WORDS_A: tuple[str, ...] = (
    "North", "Blue", "Silver", "Bright", "Green", "Iron", "Clear", "Swift", "Red", "Golden",
    "Quiet", "Summit", "River", "Stone", "Cedar", "Harbor", "Atlas", "Nova", "Polar", "Sun",
    "Maple", "Oak", "Falcon", "Lumen", "Vertex", "Orbit", "Pioneer", "Crest", "Prism", "Delta",
)  # fmt: skip
NAME_WORDS_B: tuple[str, ...] = (
    "wind", "field", "bridge", "point", "gate", "line", "works", "path", "wave", "stone",
    "light", "peak", "forge", "port", "grid", "leaf", "spring", "mark", "view", "core",
)  # fmt: skip
NAME_WORDS_C: tuple[str, ...] = (
    "Systems", "Labs", "Partners", "Group", "Logistics", "Health", "Foods", "Analytics",
    "Holdings", "Solutions", "Media", "Robotics", "Energy", "Capital", "Studios", "Retail",
)  # fmt: skip

# (display, ascii for e-mail)
FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("Anna", "anna"), ("James", "james"), ("Sofia", "sofia"), ("Liam", "liam"),
    ("Emma", "emma"), ("Noah", "noah"), ("Olivia", "olivia"), ("Lukas", "lukas"),
    ("Chloé", "chloe"), ("José", "jose"), ("Mia", "mia"), ("Daan", "daan"),
    ("Søren", "soren"), ("Priya", "priya"), ("Mateo", "mateo"), ("Hannah", "hannah"),
    ("Oliver", "oliver"), ("Zoë", "zoe"), ("Elif", "elif"), ("Marco", "marco"),
    ("Yuki", "yuki"), ("Haruto", "haruto"), ("Sakura", "sakura"), ("Kenji", "kenji"),
)  # fmt: skip
LAST_NAMES: tuple[tuple[str, str], ...] = (
    ("Smith", "smith"), ("Müller", "mueller"), ("Martin", "martin"), ("de Vries", "devries"),
    ("García", "garcia"), ("Johnson", "johnson"), ("Brown", "brown"), ("Schmidt", "schmidt"),
    ("Dubois", "dubois"), ("Jansen", "jansen"), ("Taylor", "taylor"), ("Andersson", "andersson"),
    ("Rossi", "rossi"), ("Patel", "patel"), ("Wilson", "wilson"), ("Lefèvre", "lefevre"),
    ("Fischer", "fischer"), ("O'Brien", "obrien"), ("Tanaka", "tanaka"), ("Sato", "sato"),
)  # fmt: skip
TITLES: tuple[str, ...] = (
    "Head of Sales", "Sales Operations Manager", "CRM Administrator", "VP Marketing",
    "IT Manager", "CFO", "Customer Success Lead", "Procurement Manager", "COO",
    "Revenue Operations Analyst",
)  # fmt: skip

# account owners: (name, email, segment they cover)
OWNERS: tuple[tuple[str, str, int], ...] = (
    ("Dana Whitfield", "dana.whitfield@acme-saas.example", 2),
    ("Rafael Ortega", "rafael.ortega@acme-saas.example", 2),
    ("Ingrid Halvorsen", "ingrid.halvorsen@acme-saas.example", 1),
    ("Tom Becker", "tom.becker@acme-saas.example", 1),
    ("Aiko Mori", "aiko.mori@acme-saas.example", 1),
    ("Sam Patel", "sam.patel@acme-saas.example", 0),
    ("Lucy Chen", "lucy.chen@acme-saas.example", 0),
    ("Marc Dupont", "marc.dupont@acme-saas.example", 0),
)

# The usage metrics this business measures, in the order the generator writes them (declared
# for the pipeline in config/business.yml).
USAGE_METRICS: tuple[str, ...] = ("active_users", "api_calls", "storage_gb", "features_used")
