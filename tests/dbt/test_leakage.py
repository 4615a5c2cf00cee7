"""Leakage guard: nothing dated after a snapshot day may change that snapshot's features.

Build once, then rewrite in `raw` everything dated after snapshot S (usage, tickets, NPS,
activities, opportunities, invoices, subscription changes and cancellations; some of it at
the very first instant after S, 00:00 of S + 1 day), rebuild, and compare account_features
(account_snapshots plus a column per usage metric and stat): every feature of every snapshot
on or before S is unchanged, and so is every label whose
window (d, d + horizon] ends on or before S. Firmographics and a ticket's priority are the
accepted leak of DECISIONLOG.md (latest known values) and are left alone here.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

S = date(2026, 6, 30)  # a month-end snapshot in the middle of the 8 generated months
AFTER = f"timestamp '{S + timedelta(days=1)} 00:00:00'"  # the first instant not known at S

CHANGES_AFTER_S = [
    # usage: half the accounts stop reporting, the others report other values
    f"delete from raw.usage__usage_daily where usage_date > date '{S}' and hash(account_id) % 2 = 0",
    f"update raw.usage__usage_daily set value = value * 3 + 1 where usage_date > date '{S}'",
    # support: later tickets gone; tickets open at S closed at the first instant after it;
    # a copy of each ticket opened at that instant
    f"delete from raw.crm__support_tickets where opened_at >= {AFTER}",
    f"""update raw.crm__support_tickets set closed_at = {AFTER}, updated_at = {AFTER}
        where closed_at is null or closed_at >= {AFTER}""",
    f"""insert into raw.crm__support_tickets
        select * replace ('late_' || ticket_id as ticket_id, {AFTER} as opened_at,
                          null as closed_at, {AFTER} as updated_at)
        from raw.crm__support_tickets""",
    # NPS: later responses turn into detractors; a promoter response at the first instant after S
    f"update raw.crm__nps_responses set score = 0 where responded_at >= {AFTER}",
    f"""insert into raw.crm__nps_responses
        select * replace ('late_' || response_id as response_id, {AFTER} as responded_at, 10 as score)
        from raw.crm__nps_responses where responded_at < {AFTER}""",
    # activities: later ones gone, one per earlier activity at the first instant after S
    f"delete from raw.crm__activities where occurred_at >= {AFTER}",
    f"""insert into raw.crm__activities
        select * replace ('late_' || activity_id as activity_id, {AFTER} as occurred_at)
        from raw.crm__activities""",
    # opportunities: later ones gone; those open at S won at the first instant after it
    f"delete from raw.crm__opportunities where created_at >= {AFTER}",
    f"""update raw.crm__opportunities set stage = 'closed_won', closed_at = {AFTER}, updated_at = {AFTER}
        where closed_at is null or closed_at >= {AFTER}""",
    # invoices: later payments 40 days later still; invoices unpaid at S voided right after it
    f"update raw.billing__invoices set paid_at = paid_at + interval 40 day where paid_at >= {AFTER}",
    f"""update raw.billing__invoices set status = 'void', updated_at = {AFTER}
        where (paid_at is null or paid_at >= {AFTER}) and issued_at < {AFTER}
            and lower(trim(status)) != 'void'""",
    # subscriptions: later versions re-priced; an upsell of a third of the subscriptions at the
    # first instant after S; another third cancelled at that instant
    f"""update raw.billing__subscription_changes set quantity = quantity * 2, unit_amount = unit_amount * 1.5
        where effective_at >= {AFTER}""",
    f"""insert into raw.billing__subscription_changes
        select * replace ('late_' || change_id as change_id, {AFTER} as effective_at, quantity + 5 as quantity)
        from raw.billing__subscription_changes
        where effective_at < {AFTER} and hash(subscription_id) % 3 = 0
        qualify row_number() over (partition by subscription_id order by effective_at desc, change_id desc) = 1""",
    f"""update raw.billing__subscriptions set canceled_at = {AFTER}, updated_at = {AFTER}
        where started_at < {AFTER} and (canceled_at is null or canceled_at >= {AFTER})
            and hash(subscription_id) % 3 = 1""",
]


def _snapshots(dbt, warehouse: Path) -> pd.DataFrame:
    frame = dbt.read(warehouse, "select * from marts.account_features")
    frame["snapshot_date"] = pd.to_datetime(frame["snapshot_date"]).dt.date
    return frame.sort_values(["snapshot_date", "account_id"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def rebuilt(dbt, built_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("dbt-leakage")
    warehouse = dbt.copy(built_warehouse, work)
    con = duckdb.connect(str(warehouse))
    try:
        for sql in CHANGES_AFTER_S:
            con.execute(sql)
    finally:
        con.close()
    # raw rows were deleted, which the incremental usage model cannot see: rebuild it all
    dbt.run(["run", "--full-refresh"], work, warehouse=warehouse)
    return warehouse


def test_features_on_or_before_s_ignore_everything_dated_after_it(
    dbt, built_warehouse: Path, rebuilt: Path
) -> None:
    before, after = _snapshots(dbt, built_warehouse), _snapshots(dbt, rebuilt)
    features = [c for c in before.columns if c not in dbt.labels]
    known = before[before["snapshot_date"] <= S][features].reset_index(drop=True)
    assert set(known["snapshot_date"]) == {
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 31),
        S,
    }
    pd.testing.assert_frame_equal(
        after[after["snapshot_date"] <= S][features].reset_index(drop=True),
        known,
        check_exact=False,
        rtol=1e-9,
    )


def test_labels_change_only_for_windows_that_reach_past_s(
    dbt, built_warehouse: Path, rebuilt: Path
) -> None:
    before, after = _snapshots(dbt, built_warehouse), _snapshots(dbt, rebuilt)
    closed = before["snapshot_date"] + timedelta(days=dbt.horizon_days) <= S
    closed_after = after["snapshot_date"] + timedelta(days=dbt.horizon_days) <= S
    assert closed.sum() > 0
    pd.testing.assert_frame_equal(
        after[closed_after][["account_id", "snapshot_date", *dbt.labels]].reset_index(drop=True),
        before[closed][["account_id", "snapshot_date", *dbt.labels]].reset_index(drop=True),
    )
    # ... while the upsells at the first instant after S are in the labels of snapshot S
    assert (
        after.loc[after["snapshot_date"] == S, "expansion_mrr_next"].sum()
        > before.loc[before["snapshot_date"] == S, "expansion_mrr_next"].sum()
    )


@pytest.mark.parametrize(
    "feature",
    [
        "max_limit_utilization",
        "tickets_open",
        "nps_latest",
        "days_since_last_activity",
        "opportunities_open",
        "invoices_overdue_open",
        "mrr",
        "products_held",
    ],
)
def test_the_changes_reach_later_snapshots(
    dbt, built_warehouse: Path, rebuilt: Path, feature: str
) -> None:
    """Guards the guard: each kind of change does move some feature after S."""
    before, after = _snapshots(dbt, built_warehouse), _snapshots(dbt, rebuilt)
    later = (before["snapshot_date"] > S).to_numpy()
    old = before.loc[later, feature].reset_index(drop=True)
    new = after.loc[(after["snapshot_date"] > S).to_numpy(), feature].reset_index(drop=True)
    assert len(old) == len(new)
    assert not old.fillna(-1).equals(new.fillna(-1)), f"{feature} did not change after {S}"
