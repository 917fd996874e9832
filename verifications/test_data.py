"""Success criterion "Zero data loss": nothing the baseline counted before the deploy is gone."""

import pytest

from postdeploy.data.baseline import ledger_differences, losses, measure
from postdeploy.ledger.plugin import LEDGER_GROUP

# The ledger's counts and history come from the run's one ledger pass: under -n, its criteria run in one worker.
pytestmark = [pytest.mark.post_deploy, pytest.mark.data, pytest.mark.xdist_group(LEDGER_GROUP)]


@pytest.fixture(scope="session")
def compared(baseline, ledger_pass, catalog, settings):
    """The baseline and the same measures now, or the reason there is none (or the pass's error)."""
    found, reason = baseline
    if found is None or (ledger_pass is not None and ledger_pass.error):
        return None, reason
    return (found, measure(catalog, settings, found, ledger_pass.figures if ledger_pass else None)), ""


def _baseline(compared, baseline_file, ledger, signoff):
    found, reason = compared
    if reason:
        if baseline_file.is_file():  # present but unreadable: a failure, never a skip
            signoff.check(False, wanted=f"a readable baseline at {baseline_file}", observed=reason)
        signoff.skip(reason)  # blocking where the data area is required
    ledger.require(signoff)  # one line when the ledger pass could not be used
    return found


def test_no_rows_lost(compared, baseline_file, ledger, signoff):
    """Zero data loss: no table and no tenant has fewer rows than in the pre-deploy baseline."""
    baseline, now = _baseline(compared, baseline_file, ledger, signoff)
    lost = losses(baseline, now)
    dropped = [x.table for x in lost if x.rows_now == "table dropped"]
    total = sum(v for v in now.tables.values() if v is not None)
    signoff.check(
        not lost,
        wanted=f"every table and tenant of the baseline ({baseline.captured_at}) still has at least its rows",
        observed=(
            (f"tables dropped: {', '.join(dropped)}; " if dropped else "")
            + f"{len(lost)} losses" if lost else
            f"{len(baseline.tables)} tables, {sum(len(t) for t in baseline.tenants.values())} tenant counts:"
            f" none lower ({baseline.total_rows} rows at baseline, {total} now)"
        ),
        evidence=lost,
        figures={f"rows {table}": rows for table, rows in now.tables.items() if rows is not None},
    )


def test_ledger_history_unchanged(balances_kept, compared, baseline_file, ledger, signoff):
    """Zero data loss: the ledger rows that existed before the deploy are unchanged (count, sum, row hash)."""
    baseline, now = _baseline(compared, baseline_file, ledger, signoff)
    b = baseline.ledger
    signoff.require(b, "ledger history in the baseline")
    diffs = ledger_differences(baseline, now)
    signoff.check(
        not diffs,
        wanted=f"{b.table} rows with {b.order_column} <= {b.max_order}: {b.rows} rows, sum {b.quantity_sum},"
        f" hash {b.row_hash}",
        observed=f"{len(diffs)} measures differ" if diffs else
        f"{now.ledger.rows} rows, sum {now.ledger.quantity_sum}, hash {now.ledger.row_hash}: unchanged",
        evidence=diffs,
    )
