"""What a daily `dbt build` builds: the models whose inputs changed since the last build that
succeeded, and the models of the scoring date.

A model is rebuilt (with its data tests, which `dbt build` runs for the nodes it selects) when
  - it is downstream of a source whose rows changed since the last successful build: the
    source's `max(<loaded_at_field>)` or its row count differs from what that build read (so
    a failed build is redone by the next run: only a success moves the mark), or the source
    has no `loaded_at_field` (nothing tells whether it changed); or
  - it reads the `as_of` var, directly or through a macro, or is downstream of such a model
    (found in the manifest, not listed: `as_of_models`).
Everything else (the staging views of CRM and billing tables that got no new rows, and the
tests on them) stays as the last build left it. Which models are incremental does not
matter here: a selected incremental model decides itself what to recompute.

A full build (every node) when there is no record of a successful build, when the project,
profile, dbt or DuckDB version, target, warehouse or a var other than as_of differs from that
build's, on `--full-refresh`, with EXPANSION_FRESHNESS=off, on a target other than DuckDB
(the source state is read with one DuckDB query), or when the record is deleted by hand
(`state/dbt/last_build.json`). A full build forgets the record before it starts, so if it
fails the next run builds everything again.

Why not dbt's own `source_status:fresher+`: it compares the `max_loaded_at` of two
`dbt source freshness` results, and dbt reports only sources with a freshness threshold
(`FreshnessSelector.node_is_match` requires `has_freshness`); 9 of this project's 16 raw
tables declare `freshness: null` or inherit none, so their changes would select nothing. It
also needs a freshness check in the same run, which a backfill date and
EXPANSION_FRESHNESS=off do not have.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from flows.files import write_atomic
from flows.settings import Settings
from flows.transform.command import dbt_project_hash, dbt_vars

log = logging.getLogger(__name__)

# `var('as_of')`, `var("as_of", none)`: how SQL or a macro reads the scoring date.
AS_OF_VAR = re.compile(r"""\bvar\(\s*['"]as_of['"]""")


@dataclass(frozen=True)
class Model:
    name: str
    sql: str  # raw SQL as written
    macros: frozenset[str]  # macros it calls directly
    parents: frozenset[str]  # models and sources it reads


@dataclass(frozen=True)
class Source:
    name: str  # `<source>.<table>`, as dbt's `source:` selector spells it
    relation: str  # "schema"."identifier"
    loaded_at_field: str | None


@dataclass(frozen=True)
class Graph:
    """The part of a dbt manifest the selection needs."""

    models: dict[str, Model]
    macros: dict[str, tuple[str, frozenset[str]]]  # unique_id -> (SQL, macros it calls)
    sources: dict[str, Source]


def project_graph(manifest: Any) -> Graph:
    """`Graph` of a parsed dbt manifest (dbt.contracts.graph.manifest.Manifest)."""
    models = {
        uid: Model(
            name=node.name,
            sql=node.raw_code or "",
            macros=frozenset(node.depends_on.macros),
            parents=frozenset(node.depends_on.nodes),
        )
        for uid, node in manifest.nodes.items()
        if node.resource_type == "model"
    }
    macros = {
        uid: (macro.macro_sql or "", frozenset(macro.depends_on.macros))
        for uid, macro in manifest.macros.items()
    }
    sources = {
        uid: Source(
            name=f"{src.source_name}.{src.name}",
            relation=f'"{src.schema}"."{src.identifier}"',
            loaded_at_field=src.loaded_at_field or None,
        )
        for uid, src in manifest.sources.items()
    }
    return Graph(models, macros, sources)


def _closure(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        uid = stack.pop()
        if uid not in seen:
            seen.add(uid)
            stack.extend(edges.get(uid, ()))
    return seen


def descendants(graph: Graph, start: Iterable[str]) -> set[str]:
    """The models downstream of `start` (models or sources), `start`'s models included."""
    children: dict[str, set[str]] = {}
    for uid, model in graph.models.items():
        for parent in model.parents:
            children.setdefault(parent, set()).add(uid)
    return {uid for uid in _closure(set(start), children) if uid in graph.models}


def as_of_roots(graph: Graph) -> set[str]:
    """The models that read the as_of var: in their SQL, or through a macro that does (at any
    depth of macros calling macros)."""
    callers: dict[str, set[str]] = {}
    for uid, (_, calls) in graph.macros.items():
        for called in calls:
            callers.setdefault(called, set()).add(uid)
    reading = _closure(
        {uid for uid, (sql, _) in graph.macros.items() if AS_OF_VAR.search(sql)}, callers
    )
    return {
        uid
        for uid, model in graph.models.items()
        if AS_OF_VAR.search(model.sql) or model.macros & reading
    }


def as_of_models(graph: Graph) -> set[str]:
    """Every model whose rows can change with as_of: `as_of_roots` and their descendants."""
    return descendants(graph, as_of_roots(graph))


# --- the state of the sources at the last successful build ---------------------------------


def build_record(settings: Settings) -> Path:
    """What the last successful build read: `BuildPlan.record`, as JSON."""
    return settings.home / "dbt" / "last_build.json"


def identity(settings: Settings) -> dict[str, Any]:
    """What a build's result depends on besides the sources and as_of: a change to any of it
    makes the next build a full one."""
    return {
        "project": dbt_project_hash(settings),  # files, profile, dbt and DuckDB versions
        "target": settings.target,
        "warehouse": str(settings.warehouse),
        "vars": dbt_vars(settings),
    }


def source_state(settings: Settings, sources: dict[str, Source]) -> dict[str, list[Any]]:
    """[max(loaded_at_field), row count] of every source with a loaded_at_field, in one
    query on the warehouse (a missing table fails it: the caller builds everything)."""
    from flows.warehouse import Warehouse

    timed = {uid: s for uid, s in sorted(sources.items()) if s.loaded_at_field}
    if not timed:
        return {}
    sql = "\nunion all\n".join(
        f"select '{uid}' as source, cast(max({s.loaded_at_field}) as varchar) as loaded_at, "
        f"count(*) as n from {s.relation}"
        for uid, s in timed.items()
    )
    with Warehouse.from_settings(settings).connect(read_only=True) as con:
        rows = con.execute(sql).fetchall()
    return {uid: [loaded_at, int(n)] for uid, loaded_at, n in rows}


@dataclass
class BuildPlan:
    """What one `dbt build` builds: `select` None for every node, else dbt selectors (an empty
    list: nothing to build); `record` is written to `build_record` when it succeeds."""

    select: list[str] | None
    reason: str
    record: dict[str, Any] | None = None
    changed_sources: list[str] = field(default_factory=list)

    @property
    def selection(self) -> str:
        if self.select is None:
            return "all"
        return " ".join(self.select) or "none"


def read_record(settings: Settings) -> dict[str, Any] | None:
    path = build_record(settings)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def forget_build(settings: Settings) -> None:
    """The next build builds everything (until one succeeds)."""
    build_record(settings).unlink(missing_ok=True)


def remember_build(settings: Settings, plan: BuildPlan, as_of: date) -> None:
    """After a successful build: the next one builds what changed since this one."""
    if plan.record is None:
        return
    record = {**plan.record, "as_of": as_of.isoformat(), "selection": plan.selection}
    record["built_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_atomic(build_record(settings), json.dumps(record, indent=2, sort_keys=True))


def plan_build(settings: Settings, manifest: Any, *, everything: str | None = None) -> BuildPlan:
    """The selection of this build (see the module's docstring); `everything`: a reason to
    build every node whatever the record says."""
    adapter = getattr(getattr(manifest, "metadata", None), "adapter_type", None)
    if adapter != "duckdb":
        return BuildPlan(None, f"target adapter {adapter}: no source state to compare")
    graph = project_graph(manifest)
    try:
        state = source_state(settings, graph.sources)
    except Exception as exc:  # a raw table missing, say: build everything, as before
        log.warning("could not read the state of the sources: %s", exc)
        return BuildPlan(None, f"source state unreadable ({type(exc).__name__})")
    record = {"identity": identity(settings), "sources": state}
    if everything:
        return BuildPlan(None, everything, record)
    last = read_record(settings)
    if last is None:
        return BuildPlan(None, "no successful build recorded", record)
    if last.get("identity") != record["identity"]:
        what = [
            k
            for k in record["identity"]
            if (last.get("identity") or {}).get(k) != record["identity"][k]
        ]
        return BuildPlan(
            None, f"changed since the last successful build: {', '.join(what)}", record
        )
    before = last.get("sources") or {}
    changed = sorted(
        uid
        for uid, src in graph.sources.items()
        if src.loaded_at_field is None or uid not in before or before[uid] != state.get(uid)
    )
    with_models = [uid for uid in changed if descendants(graph, [uid])]
    roots = sorted(graph.models[uid].name for uid in as_of_roots(graph))
    select = [f"source:{graph.sources[uid].name}+" for uid in with_models] + [
        f"{r}+" for r in roots
    ]
    fresh = [graph.sources[uid].name for uid in with_models if graph.sources[uid].loaded_at_field]
    reason = f"new rows in {', '.join(fresh) or 'no source'} since the last successful build"
    return BuildPlan(select, reason, record, [graph.sources[uid].name for uid in with_models])
