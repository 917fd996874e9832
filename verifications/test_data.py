"""Success criterion "Zero data loss": nothing the baseline counted before the deploy is gone."""

import pytest

from fixtures.data.baseline import Baseline, BaselineError, ledger_differences, losses, measure

# The criteria here share one pass over the ledger: under -n they run in one worker.
pytestmark = [pytest.mark.post_deploy, pytest.mark.data, pytest.mark.xdist_group("ledger-baseline-pass")]


@pytest.fixture(scope="session")
def compared(baseline_file, catalog, settings):
    """The baseline and the same measures now (one snapshot), or the reason there is none."""
    if not baseline_file.is_file():
        return None, f"no baseline at {baseline_file}: run `pytest -m baseline` before the deploy"
    try:
        baseline = Baseline.load(baseline_file)
    except BaselineError as err:
        return None, str(err)
    return (baseline, measure(catalog, settings, baseline)), ""


def _baseline(compared, baseline_file, signoff):
    found, reason = compared
    if found is None:
        if baseline_file.is_file():  # present but unreadable: a failure, never a skip
            signoff.check(False, wanted=f"a readable baseline at {baseline_file}", observed=reason)
        signoff.skip(reason)  # blocking where the data area is required
    return found


def test_no_rows_lost(compared, baseline_file, signoff):
    """Zero data loss: no table and no tenant has fewer rows than in the pre-deploy baseline."""
    baseline, now = _baseline(compared, baseline_file, signoff)
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


def test_ledger_history_unchanged(balances_kept, compared, baseline_file, signoff):
    """Zero data loss: the ledger rows that existed before the deploy are unchanged (count, sum, row hash)."""
    baseline, now = _baseline(compared, baseline_file, signoff)
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
