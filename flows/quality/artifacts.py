"""A gate's Prefect artifacts: a markdown summary and a table of every expectation."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext, TaskRunContext

from flows.quality.results import GateResult, gate_markdown, outcome_rows


def gate_artifacts(edge: str, results: list[GateResult], note: str | None) -> None:
    """The gate's artifacts on the flow run. Outside a Prefect run (the stages' plain
    functions, as the benchmark calls them) there is no run to attach them to: nothing is
    written, so no temporary Prefect API server is started just for them (10-15 s inside the
    first gate's timing)."""
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
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
