"""Schema per tenant ([tenancy] model = "schema"): every tenant schema registered, at the release,
of the template's shape, closed to the other tenants, with all its rows.

All read in one pass over the catalog (postdeploy.tenancy.schemas). Each criterion's evidence is
the schemas x checks matrix, for the schemas failing it; the ones passing are counted.
"""

import pytest

from postdeploy.tenancy.schemas import row_counts, schema_losses

pytestmark = [pytest.mark.post_deploy]


def _matrix(schemas, check, signoff, *, wanted, what):
    """Fail on the schemas whose `check` cell is not ok; the evidence is their matrix rows."""
    failing = schemas.failing(check)
    total = len(schemas.every_schema)
    signoff.check(
        not failing,
        wanted=wanted,
        observed=(f"{len(failing)} of {total} schemas {what}: {', '.join(r['schema'] for r in failing[:20])}"
                  if failing else f"all {total} tenant schemas")
        + f"; {schemas.passing_all()} pass every check",
        evidence=failing,
        identity=lambda row: row["schema"],
    )


@pytest.mark.tenancy
def test_tenant_schemas_registered(tenant_schemas, settings, signoff):
    """Tenant isolation verified: every registered tenant has its schema, every tenant-shaped schema is registered."""
    t = settings.tenancy
    source = f"{t.registry}.{t.schema_column}" if t.registry else f"schemas like {t.schema_pattern!r}"
    _matrix(tenant_schemas, "registered", signoff, what="unregistered or without a schema",
            wanted=f"every tenant in {source} has its schema ({len(tenant_schemas.registered)} registered);"
            " every schema of the tenants' shape is registered")


@pytest.mark.migration
def test_tenant_schemas_migrated(tenant_schemas, settings, signoff):
    """All migrations completed successfully: every tenant schema applied exactly the release's migrations."""
    if not tenant_schemas.history_table:
        signoff.not_applicable("a migration history per tenant schema (the shared history is checked as usual)",
                               f"[migration] tool = \"{settings.migration.tool}\" keeps no history table in the tenant schemas")
    _matrix(tenant_schemas, "migrations", signoff, what="not at the release",
            wanted=f"the release's {len(tenant_schemas.release)} migrations applied in each tenant schema's"
            f" {tenant_schemas.history_table}, no other")


@pytest.mark.migration
def test_tenant_schemas_same_shape(tenant_schemas, signoff):
    """All migrations completed successfully: every tenant schema has the template's tables, columns, constraints, indexes, triggers and functions."""
    template = f"schema {tenant_schemas.template}" if tenant_schemas.template else "the majority shape"
    if tenant_schemas.template and not tenant_schemas.template_shape:
        signoff.check(False, wanted=f"the template {template} ([tenancy] template)", observed=f"{template} not found or empty")
    _matrix(tenant_schemas, "shape", signoff, what="differ from the template",
            wanted=f"each tenant schema as {template} ({len(tenant_schemas.template_shape)} objects: tables, columns with"
            " type and nullability, constraints, indexes, triggers, functions, views)")


@pytest.mark.tenancy
def test_no_cross_tenant_schema_reference(tenant_schemas, signoff):
    """Tenant isolation verified: no foreign key or view in one tenant schema reaches another tenant schema."""
    _matrix(tenant_schemas, "references", signoff, what="reach another tenant",
            wanted="0 foreign keys and 0 views from one tenant schema to another")


@pytest.mark.data
def test_no_rows_lost_per_tenant_schema(tenant_schemas, baseline, baseline_file, db, signoff):
    """Zero data loss: no table of any tenant schema has fewer rows than in the pre-deploy baseline."""
    found, reason = baseline
    if found is None:
        if baseline_file.is_file():  # present but unreadable: a failure, never a skip
            signoff.check(False, wanted=f"a readable baseline at {baseline_file}", observed=reason)
        signoff.skip(reason)
    if not found.schemas:
        signoff.check(False, wanted="row counts per tenant schema in the baseline",
                      observed=f"the baseline of {found.captured_at} has none: capture it with [tenancy] model = \"schema\"")
    now = row_counts(db, list(found.schemas))
    lost = schema_losses(found.schemas, now)
    tables = sum(len(t) for t in found.schemas.values())
    signoff.check(
        not lost,
        wanted=f"every table of the {len(found.schemas)} tenant schemas of the baseline ({found.captured_at}) keeps its rows",
        observed=f"{len(lost)} tables lost rows in {len({x.schema for x in lost})} schemas" if lost
        else f"{tables} tables: none lower",
        evidence=lost,
        identity=lambda x: x.schema,
    )
