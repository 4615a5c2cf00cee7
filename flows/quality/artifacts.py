"""A gate's Prefect artifacts: a markdown summary and a table of every expectation."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.quality.results import GateResult, gate_markdown, outcome_rows


def gate_artifacts(edge: str, results: list[GateResult], note: str | None) -> None:
    try:
        create_markdown_artifact(
            key=f"gate-{edge}",
            markdown=gate_markdown(edge, results, note),
            description=f"{edge} data-quality gate",
        )
        if results:
            create_table_artifact(
                key=f"gate-{edge}-expectations",
                table=outcome_rows(results),
                description=f"{edge} gate: every expectation, its severity and outcome",
            )
    except Exception as exc:  # an artifact must never hide the gate's own outcome
        get_run_logger().warning("could not write the %s gate artifacts: %s", edge, exc)
