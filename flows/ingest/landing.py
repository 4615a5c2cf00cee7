"""Is there a landing zone to run on? Checked before a run writes anything.

The runtime never invents data: a landing zone that is missing (a misspelled
`EXPANSION_LANDING_DIR`, an unmounted share) or that holds no file while nothing was ever
loaded is bad input (exit 3), named with the path looked at. Demo extracts come only from
`expansion demo-data`. Every file of a local source is walked: a link out of the landing zone
is refused here, before the run writes anything (`OutsideLandingZone`, exit 3). Sources that
are not local folders (PostgreSQL, s3://, ...) are not
checked here; their connectors report what they cannot reach.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import duckdb

from flows.errors import LandingZoneEmpty
from flows.ingest.connectors.files import local_files
from flows.ingest.sources import load_sources_config
from flows.settings import Settings
from flows.warehouse import Warehouse, table_columns

HINT = (
    "set EXPANSION_LANDING_DIR (or the source urls in {sources}) to where your extracts are, "
    "or write demo extracts there with `expansion demo-data`"
)


def _local_folder(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(parsed.path)
    return Path(url) if parsed.scheme == "" else None


def has_file(folder: Path) -> bool:
    """Whether `folder` holds at least one file (at any depth), not following links out."""
    return folder.is_dir() and any(True for _ in local_files(folder))


def _loaded_before(warehouse: Warehouse) -> bool:
    """Whether any extract was ever loaded (read-only; no warehouse means no)."""
    if not warehouse.exists():
        return False
    try:
        with warehouse.connect(read_only=True) as con:
            if not table_columns(con, "raw._load_ledger"):
                return False  # a warehouse without a ledger has loaded nothing
            row = con.execute("select count(*) from raw._load_ledger").fetchone()
    except duckdb.Error:
        return True  # busy or unreadable: not this check's business, the load will say
    return bool(row and row[0])


def check_landing_zone(settings: Settings) -> None:
    """Raise LandingZoneEmpty when the landing zone or a local source folder is missing, or
    when they hold no file and nothing was ever loaded."""
    config = load_sources_config(settings.sources_file, settings.landing_dir)
    folders = [
        folder
        for spec in config.sources.values()
        if spec.type == "files" and spec.url and (folder := _local_folder(spec.url)) is not None
    ]
    if not folders:
        return
    root, hint = settings.landing_dir, HINT.format(sources=settings.sources_file)
    if not root.is_dir() and any(f.is_relative_to(root) for f in folders):
        raise LandingZoneEmpty(f"landing zone {root} is missing: no such folder; {hint}")
    # every file walked (not just the first): a link out of the zone stops the run here
    found = sum(sum(1 for _ in local_files(f, zone=root)) for f in folders if f.is_dir())
    if not found and not _loaded_before(Warehouse.from_settings(settings)):
        looked = ", ".join(str(f) for f in folders)
        raise LandingZoneEmpty(
            f"landing zone {root} is empty: no extract file under {looked}, and nothing was "
            f"loaded before; {hint}"
        )
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise LandingZoneEmpty(f"source folder(s) missing: {', '.join(missing)}; {hint}")
