"""Tenant isolation verified, at the database level."""

import pytest

from postdeploy.ledger.plugin import LEDGER_GROUP

pytestmark = [pytest.mark.post_deploy, pytest.mark.tenancy]


def test_no_orphan_tenant_values(tenancy, settings, signoff):
    """Tenant isolation verified: every tenant value names an existing organization."""
    signoff.precondition(tenancy.unreadable(), wanted="every tenant-scoped table with its tenant column")
    orphans = tenancy.orphan_tenants()
    signoff.check(
        not orphans,
        wanted=f'every "{tenancy.column_name}" value found in {settings.tenancy.organizations_table}',
        observed=f"{len(orphans)} unknown tenant values" if orphans else f"all values known in {len(tenancy.ready_tables)} tables",
        evidence=orphans,
        identity=lambda o: o.table,  # the evidence lists a few values per table: the table is the whole set
    )


@pytest.mark.xdist_group(LEDGER_GROUP)
def test_tenant_consistent_along_foreign_keys(tenancy, ledger, signoff):
    """Tenant isolation verified: no row refers to, or joins, rows of another tenant."""
    signoff.precondition(tenancy.unreadable() + tenancy.derived_gaps(),
                         wanted="every tenant-scoped table with its tenant column; every derived table with a tenant-scoped parent")
    links = tenancy.tenant_foreign_keys()
    # Other tables by their rows (while the run's ledger pass reads the ledger), then the ledger
    # per (tenant, key) group, from that pass.
    others = tenancy.cross_tenant_rows(skip=ledger.table)
    figures = ledger.require(signoff)  # None: there is no ledger table
    mismatches = (figures.cross_tenant if figures else []) + others
    by_table = {m.table: m.rows for m in mismatches}
    derived = ", ".join(str(t) for t, _ in tenancy.derived)
    signoff.check(
        not mismatches,
        wanted=f"0 cross-tenant rows along {sum(len(v) for v in links.values())} foreign keys to tenant-scoped tables"
        + (f" (derived tables: {derived})" if derived else ""),
        observed=", ".join(f"{rows} rows in {table}" for table, rows in by_table.items()) or "0 cross-tenant rows",
        evidence=mismatches,
        identity=lambda m: m.table,
    )
