"""Before the deploy (`pytest -m baseline`): the snapshot the zero-data-loss criteria compare with."""

import pytest

from postdeploy.data.baseline import capture

pytestmark = [pytest.mark.baseline, pytest.mark.data]


def test_capture_baseline(catalog, db, settings, baseline_file, signoff):
    """Zero data loss: capture the pre-deploy baseline (row counts per table and tenant, ledger history)."""
    database = db.execute("SELECT current_database()").fetchone()[0]
    baseline = capture(catalog, settings, database)
    baseline.save(baseline_file)
    ledger = baseline.ledger
    signoff.check(
        True,
        wanted="a baseline file with per-table and per-tenant row counts and the ledger's history",
        observed=f"{len(baseline.tables)} tables, {baseline.total_rows} rows"
        + (f"; {ledger.table}: {ledger.rows} rows up to {ledger.order_column} {ledger.max_order}, hash {ledger.row_hash}"
           if ledger else "; no ledger")
        + f"; written to {baseline_file} in {baseline.seconds:.2f} s",
        evidence=[{"table": t, "rows": n, "tenants": len(baseline.tenants.get(t, {})) or ""} for t, n in baseline.tables.items()],
    )
