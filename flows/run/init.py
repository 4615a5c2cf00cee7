"""A state folder an analyst can build in before the first run: `expansion init`.

On a fresh clone there is no `state/warehouse.duckdb`, so a plain `dbt build` in dbt_project/
(whose profile points there) cannot even connect. `init_state` makes the state folder (private,
as a run would) and, when there is no warehouse yet, one holding the raw schema the loader
writes (every table of the extract contract, empty, and the business's declared usage metrics),
so the dbt project builds and tests on empty sources. It never changes a warehouse that
exists beyond what the loader itself would create (`create ... if not exists`): `make install`
runs it every time.
"""

from __future__ import annotations

import logging

from flows.files import private_dir
from flows.ingest.declarations import write_declarations
from flows.ingest.ledger import ensure_raw_schema
from flows.settings import Settings
from flows.warehouse import Warehouse
from models.business import load_business

log = logging.getLogger(__name__)


def init_state(settings: Settings) -> list[str]:
    """Create what is missing of the state folder and the warehouse; returns what was made."""
    made = []
    if not settings.home.is_dir():
        made.append(str(settings.home))
    private_dir(settings.home)
    warehouse = settings.warehouse
    if warehouse.exists():
        return made
    private_dir(warehouse.parent)
    with Warehouse.from_settings(settings).connect() as con:
        ensure_raw_schema(con)
        write_declarations(con, load_business(settings.business_file))
    made.append(f"{warehouse} (the raw schema, empty: `expansion run` loads it)")
    return made
