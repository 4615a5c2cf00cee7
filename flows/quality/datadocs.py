"""Data Docs that work offline: one self-contained HTML page per suite run, and an index.

GX 1.24's own Data Docs builder (`context.build_data_docs`) writes pages that load Bootstrap,
bootstrap-table, jQuery, popper, Font Awesome and Vega from CDNs (maxcdn.bootstrapcdn.com,
stackpath.bootstrapcdn.com, unpkg.com, cdnjs.cloudflare.com, cdn.jsdelivr.net,
code.jquery.com): offline they show as unstyled text, and the pipeline runs where there may be
no internet. So the pages are rendered here from the same GX validation-result JSON the gates
write under `<home>/quality/<run_id>/`, with inline CSS, no script and no external reference.

Layout: `<home>/quality/data_docs/index.html` (every suite run, newest run first),
`data_docs/runs/<run_id>/<suite>.html`, and `data_docs/manifest.json` (what the index lists,
so a run renders only its own pages).
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

DOCS_DIR = "data_docs"
MANIFEST = "manifest.json"
EDGE_ORDER = {"raw": 0, "marts": 1, "drift": 2, "scores": 3}
_HIDDEN_KWARGS = {"column", "result_format", "batch_id"}

CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:14px 24px}
header a{color:#9ecbff}
header h1{font-size:20px;margin:0 0 4px}
main{padding:16px 24px;max-width:1400px}
table{border-collapse:collapse;width:100%;background:#fff;margin:8px 0 20px}
th,td{border:1px solid #d0d7de;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eaeef2;font-weight:600}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px}
.ok{background:#dafbe1;color:#116329}.warn{background:#fff8c5;color:#7d4e00}
.fail{background:#ffebe9;color:#a40e26}
tr.fail td{background:#fff5f5}tr.warn td{background:#fffdf0}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;background:#fff;
padding:10px 14px;border:1px solid #d0d7de}
dt{font-weight:600}dd{margin:0}
h2{font-size:16px;margin:22px 0 6px}
.muted{color:#57606a}
details summary{cursor:pointer;color:#57606a;font-size:12px;margin-top:3px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _document(title: str, header: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><header>{header}</header><main>{body}</main></body></html>\n"
    )


def _badge(status: str, severity: str = "critical") -> str:
    cls = {"passed": "ok", "passed with warnings": "warn"}.get(status, "fail")
    if cls == "fail" and severity == "warning":
        cls = "warn"
    return f"<span class='badge {cls}'>{_e(status)}</span>"


def _preview(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return (
        f"<h2>Validated rows</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _columns(kwargs: dict[str, Any]) -> str:
    if "column" in kwargs:
        return str(kwargs["column"])
    cols = kwargs.get("column_list") or [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]
    return ", ".join(map(str, cols))


def _observed(result: dict[str, Any]) -> str:
    parts = []
    if result.get("unexpected_count") is not None:
        pct = result.get("unexpected_percent")
        pct_text = f" ({pct:.2f}%)" if isinstance(pct, int | float) else ""
        parts.append(
            f"{result['unexpected_count']} of {result.get('element_count')} rows "
            f"unexpected{pct_text}"
        )
    if result.get("missing_count"):
        parts.append(f"{result['missing_count']} missing")
    if "observed_value" in result:
        parts.append(f"observed {_json(result['observed_value'])}")
    return "; ".join(parts)


def _examples(result: dict[str, Any]) -> str:
    rows = [r for r in result.get("partial_unexpected_index_list") or [] if isinstance(r, dict)]
    if rows:  # with the suite's row ids (meta.row_id); otherwise GX lists bare row numbers
        return _json(rows[:10])
    counts = result.get("partial_unexpected_counts")
    if counts:
        return ", ".join(f"{_json(c.get('value'))} x{c.get('count')}" for c in counts[:10])
    values = result.get("partial_unexpected_list")
    return _json(values[:10]) if values else ""


_NOT_SAID = {"row_condition", "condition_parser", "result_format", "batch_id", "meta"}


def _param(params: dict[str, Any], name: str) -> str:
    """One value of GX's sentence, as HTML: a run parameter by its name, a list joined."""
    if name not in params:
        return _e(f"${name}")
    value = params[name].get("value")
    if isinstance(value, dict) and "$PARAMETER" in value:
        return f"<code>{_e(value['$PARAMETER'])}</code> (this run's value)"
    if isinstance(value, list):
        return ", ".join(f"<code>{_e(_cell(v))}</code>" for v in value)
    return f"<code>{_e(_cell(value))}</code>"


def expectation_sentence(kind: str, kwargs: dict[str, Any]) -> str | None:
    """The expectation as GX's own prescriptive renderer words it ("seats values must be
    greater than or equal to 1, at least 95 % of the time."), as HTML with each value in
    <code>; a row condition is said before it. None when GX has no sentence for it."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.render.renderer.inline_renderer import InlineRenderer

    said = {k: v for k, v in kwargs.items() if k not in _NOT_SAID}
    try:
        config = ExpectationConfiguration(type=kind, kwargs=said)
        rendered = InlineRenderer(render_object=config).get_rendered_content()
    except Exception:  # not a GX expectation, or arguments GX cannot render
        return None
    for item in rendered:
        content: dict[str, Any] = dict(item.to_json_dict())
        value = content.get("value")
        if content.get("name") != "atomic.prescriptive.summary" or not isinstance(value, dict):
            continue
        template, params = value.get("template"), value.get("params") or {}
        if not template:
            continue

        def said_value(match: re.Match[str], params: dict[str, Any] = params) -> str:
            return _param(params, match.group(1))

        text = re.sub(r"\$(\w+)", said_value, _e(template))
        condition = kwargs.get("row_condition")
        if condition:
            text = f"Where <code>{_e(condition)}</code>: {text}"
        return text
    return None


def _expectation(cfg: dict[str, Any], expected: dict[str, Any]) -> str:
    """The expectation cell: GX's sentence with the type and arguments folded under it, or
    the type and arguments when GX has no sentence."""
    kind = str(cfg.get("type", ""))
    raw = f"<code>{_e(kind)}</code><pre>{_e(_json(expected))}</pre>"
    sentence = expectation_sentence(kind, cfg.get("kwargs") or {})
    if sentence is None:
        return raw
    return f"{sentence}<details><summary>{_e(kind)}</summary>{raw}</details>"


def render_page(payload: dict[str, Any], index_href: str, json_href: str) -> str:
    """One suite run as a self-contained page, from GX validation-result JSON."""
    info = payload.get("meta", {}).get("expansion", {})
    suite = info.get("suite") or payload.get("suite_name", "suite")
    rows = []
    for res in payload.get("results", []):
        cfg = res.get("expectation_config", {})
        kwargs = cfg.get("kwargs", {})
        severity = (cfg.get("meta") or {}).get("severity", "critical")
        success = bool(res.get("success"))
        result = res.get("result") or {}
        exc = res.get("exception_info") or {}
        if exc.get("raised_exception"):
            success = False
        cls = "" if success else ("fail" if severity == "critical" else "warn")
        expected = {k: v for k, v in kwargs.items() if k not in _HIDDEN_KWARGS}
        observed = _observed(result)
        if exc.get("raised_exception"):
            observed = f"error: {exc.get('exception_message')}"
        rows.append(
            f"<tr class='{cls}'>"
            f"<td>{_badge('passed' if success else 'failed', severity)}</td>"
            f"<td>{_e(severity)}</td>"
            f"<td>{_expectation(cfg, expected)}</td>"
            f"<td><code>{_e(_columns(kwargs))}</code></td>"
            f"<td>{_e(observed)}</td>"
            f"<td><pre>{_e(_examples(result))}</pre></td></tr>"
        )
    stats = payload.get("statistics", {})
    facts = {
        "status": _badge(info.get("status", "passed" if payload.get("success") else "failed")),
        "table": f"<code>{_e(info.get('table', ''))}</code>",
        "gate": _e(info.get("edge", "")),
        "run": f"<code>{_e(info.get('run_id', ''))}</code>",
        "validated at": _e(info.get("validated_at", "")),
        "rows validated": _e(info.get("rows", ""))
        + (f" ({_e(info['scope'])})" if info.get("scope") else ""),
        "expectations": _e(
            f"{stats.get('evaluated_expectations', len(rows))} evaluated, "
            f"{stats.get('unsuccessful_expectations', 0)} unsuccessful; "
            f"{info.get('critical_failures', 0)} critical and "
            f"{info.get('warning_failures', 0)} warning failures"
        ),
        "parameters": f"<code>{_e(_json(info.get('parameters', {})))}</code>",
        "seconds": _e(info.get("seconds", "")),
        "validation result": f"<a href='{_e(json_href)}'>{_e(Path(json_href).name)}</a>",
    }
    facts_html = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts.items())
    header = f"<h1>{_e(suite)}</h1><a href='{_e(index_href)}'>&larr; all validation runs</a>"
    body = (
        f"<dl>{facts_html}</dl><h2>Expectations</h2><table><thead><tr><th>result</th>"
        "<th>severity</th><th>expectation</th><th>column</th>"
        "<th>observed</th><th>example bad values</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + _preview(info.get("preview") or [])
    )
    return _document(f"{suite} - {info.get('run_id', '')}", header, body)


def render_index(entries: list[dict[str, Any]]) -> str:
    """Every suite run in the manifest, grouped by pipeline run, newest first."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        runs.setdefault(entry["run_id"], []).append(entry)
    ordered = sorted(
        runs.items(), key=lambda kv: max(e.get("validated_at", "") for e in kv[1]), reverse=True
    )
    parts = []
    for run_id, items in ordered:
        items.sort(key=lambda e: (EDGE_ORDER.get(e.get("edge") or "", 9), e["suite"]))
        failed = any(not e.get("passed", True) for e in items)
        warned = any(e.get("warning_failures") for e in items)
        status = "failed" if failed else "passed with warnings" if warned else "passed"
        started = min(e.get("validated_at", "") for e in items)
        rows = "".join(
            f"<tr class='{'' if e.get('passed') else 'fail'}'>"
            f"<td>{_e(e.get('edge', ''))}</td>"
            f"<td><a href='{_e(e['page'])}'>{_e(e['suite'])}</a></td>"
            f"<td><code>{_e(e.get('table', ''))}</code></td>"
            f"<td>{_e(e.get('rows', ''))}</td><td>{_badge(e.get('status', ''))}</td>"
            f"<td>{_e(e.get('expectations', ''))}</td>"
            f"<td>{_e(e.get('critical_failures', 0))}</td>"
            f"<td>{_e(e.get('warning_failures', 0))}</td></tr>"
            for e in items
        )
        parts.append(
            f"<h2>Run <code>{_e(run_id)}</code> {_badge(status)} "
            f"<span class='muted'>{_e(started)}</span></h2>"
            "<table><thead><tr><th>gate</th><th>suite</th><th>table</th><th>rows</th>"
            "<th>status</th><th>expectations</th><th>critical failures</th>"
            f"<th>warnings</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    header = "<h1>Data quality: validation runs</h1><span>Great Expectations suites at the "
    header += "pipeline's edges (expectations/), newest run first</span>"
    body = "".join(parts) or "<p>No validation runs yet.</p>"
    return _document("Data quality: validation runs", header, body)


def _manifest(docs: Path) -> dict[str, dict[str, Any]]:
    path = docs / MANIFEST
    try:
        loaded: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return loaded
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def update_data_docs(quality_dir: Path, result_files: list[Path]) -> tuple[Path, dict[str, Path]]:
    """Render a page per validation-result file and rebuild the index.

    Returns the index path and each suite's page. Results of earlier runs stay listed (from
    `manifest.json`; when it is missing, every result under `quality_dir` is listed again).
    """
    docs = quality_dir / DOCS_DIR
    manifest = _manifest(docs)
    if not manifest:
        result_files = sorted(
            {*result_files, *(p for p in quality_dir.glob("*/*.json") if p.parent.name != DOCS_DIR)}
        )
    pages: dict[str, Path] = {}
    for file in result_files:
        payload = json.loads(file.read_text())
        info = payload.get("meta", {}).get("expansion", {})
        run_id = str(info.get("run_id") or file.parent.name)
        suite = str(info.get("suite") or payload.get("suite_name") or file.stem)
        rel = Path("runs") / run_id / f"{suite}.html"
        page = docs / rel
        _write(
            page,
            render_page(
                payload,
                index_href=os.path.relpath(docs / "index.html", page.parent),
                json_href=os.path.relpath(file, page.parent),
            ),
        )
        pages[suite] = page
        manifest[f"{run_id}/{suite}"] = {
            "run_id": run_id,
            "suite": suite,
            "page": rel.as_posix(),
            "expectations": len(payload.get("results", [])),
            **{
                k: info.get(k)
                for k in (
                    "table",
                    "edge",
                    "rows",
                    "passed",
                    "status",
                    "critical_failures",
                    "warning_failures",
                    "validated_at",
                )
            },
        }
    _write(docs / MANIFEST, json.dumps(manifest, indent=1, default=str))
    index = docs / "index.html"
    _write(index, render_index(list(manifest.values())))
    return index, pages
