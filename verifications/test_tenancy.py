"""Tenant isolation verified, at the database level."""

import pytest

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
    )


def test_tenant_consistent_along_foreign_keys(tenancy, signoff):
    """Tenant isolation verified: no row refers to, or joins, rows of another tenant."""
    signoff.precondition(tenancy.unreadable() + tenancy.derived_gaps(),
                         wanted="every tenant-scoped table with its tenant column; every derived table with a tenant-scoped parent")
    links = tenancy.tenant_foreign_keys()
    mismatches = tenancy.cross_tenant_rows()
    by_table = {m.table: m.rows for m in mismatches}
    derived = ", ".join(str(t) for t, _ in tenancy.derived)
    signoff.check(
        not mismatches,
        wanted=f"0 cross-tenant rows along {sum(len(v) for v in links.values())} foreign keys to tenant-scoped tables"
        + (f" (derived tables: {derived})" if derived else ""),
        observed=", ".join(f"{rows} rows in {table}" for table, rows in by_table.items()) or "0 cross-tenant rows",
        evidence=mismatches,
    )
