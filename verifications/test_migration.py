"""Deployment steps 2 and 3: the organization and balance migrations landed completely."""

import pytest

from postdeploy.migration.drift import compare as compare_schema, describe as describe_schema
from postdeploy.migration.build import history_tables
from postdeploy.migration.plugin import NOT_CONFIGURED
from postdeploy.migration.release import ReleaseError
from postdeploy.migration.status import compare as compare_status, uncompared
from postdeploy.migration.tools import missing_history, reader_for

pytestmark = [pytest.mark.post_deploy, pytest.mark.migration]

BALANCE_EVENTS = {"INSERT", "UPDATE", "DELETE"}


def _history(migration_history, catalog, settings, signoff):
    """The tool's history; not applicable when the application declares none, failed when its
    table is missing (naming another tool's history the database holds)."""
    if settings.migration.tool == "none":
        signoff.not_applicable("a migration history", '[migration] tool = "none"')
    if migration_history is None:
        table = reader_for(settings.migration).tables[0]
        signoff.check(False, wanted=f"{settings.migration.tool} history table {table} exists",
                      observed=missing_history(catalog.conn, catalog.schemas, settings.migration))
    return migration_history


def test_no_failed_migration(migration_history, catalog, settings, signoff):
    """All migrations completed successfully: no failed or dirty migration, no migration lock left held."""
    history = _history(migration_history, catalog, settings, signoff)
    failed = history.failed
    signoff.check(
        not failed and not history.locks,
        wanted="every migration finished or rolled back, no migration lock held",
        observed=f"{len(failed)} failed of {len(history.entries)} recorded in {history.table}"
        + (f"; {len(history.locks)} lock(s) held" if history.locks else ""),
        evidence=[
            *({"migration": m.name, "state": m.state, "started": m.at, "log": m.detail} for m in failed),
            *({"migration": lock, "state": "lock held", "started": None, "log": ""} for lock in history.locks),
        ],
        identity=lambda row: row["migration"],
    )


def test_required_migrations_applied(migration_history, catalog, settings, signoff):
    """All migrations completed successfully: every required migration is applied."""
    history = _history(migration_history, catalog, settings, signoff)
    if not history.entries:
        signoff.check(False, wanted="the applied migrations recorded", observed=history.describe_empty())
    required = settings.migration.required
    missing = [name for name in required if not any(m.applied and m.matches(name) for m in history.entries)]
    signoff.check(
        not missing,
        wanted=f"applied: {', '.join(required)}" if required else f"applied migrations in {history.table}",
        observed=f"missing: {', '.join(missing)}" if missing
        else f"all {len(required)} applied" if required else f"{len(history.applied)} applied",
        evidence=[
            {
                "required": name,
                "recorded as": ", ".join(f"{m.name} ({m.state}, {m.at})" for m in history.entries if m.matches(name))
                or f"no row in {history.table}",
            }
            for name in missing
        ],
        identity=lambda row: row["required"],
    )


def test_organizations_table(tenancy, target, settings, signoff):
    """Verify organizations table created, with a primary key; DEFAULT_ORG_ID names an organization."""
    table = signoff.require(tenancy.organizations, f"table {settings.tenancy.organizations_table}")
    key = tenancy.organizations_key
    default = target.default_org_id
    default_found = tenancy.has_organization(default) if default and len(key) == 1 else None
    signoff.check(
        len(key) == 1 and default_found is not False,
        wanted="a single-column primary key" + (f"; organization {default} exists" if default else ""),
        observed=f"{table} primary key ({', '.join(key) or 'none'})"
        + ("" if default is None else f"; DEFAULT_ORG_ID {default} {'found' if default_found else 'NOT found'}"),
    )


def test_tenant_columns_not_null(tenancy, signoff):
    """Verify orgId columns added: every tenant-scoped table has a NOT NULL tenant column."""
    gaps = tenancy.missing_or_nullable()
    declared = tenancy.declared_nullable()
    signoff.check(
        not gaps,
        wanted=f'"{tenancy.column_name}" NOT NULL on {len(tenancy.tables)} tenant-scoped tables'
        + "".join(f' ("{c}" on {t})' for t, c in tenancy.settings.columns.items())
        + (f" (nullable by declaration: {', '.join(declared)})" if declared else ""),
        observed=f"{len(gaps)} tables fall short" if gaps
        else f"all {len(tenancy.tables) - len(declared)} NOT NULL" + (f", {len(declared)} nullable as declared" if declared else ""),
        evidence=gaps,
        identity=lambda gap: gap.table,
    )


def test_tenant_backfill_complete(tenancy, signoff):
    """Verify data backfilled: no row without a tenant value in any tenant-scoped table."""
    signoff.precondition(tenancy.unreadable(), wanted="every tenant-scoped table with its tenant column")
    nulls = tenancy.null_tenant_rows()
    allowed = tenancy.null_tenant_rows(allowed=True)
    signoff.check(
        not nulls,
        wanted=f'0 rows with a null "{tenancy.column_name}"'
        + (" outside the tables declared nullable" if tenancy.declared_nullable() else ""),
        observed=(f"{sum(n.rows for n in nulls)} rows in {len(nulls)} tables" if nulls else "0 rows")
        + "".join(f"; {n.rows} allowed in {n.table} (declared nullable)" for n in allowed),
        evidence=nulls,
        identity=lambda n: n.table,
    )


def test_tenant_foreign_keys_validated(tenancy, settings, signoff):
    """Verify foreign keys created: every tenant column references the organizations table, validated."""
    gaps = tenancy.foreign_key_gaps()
    signoff.check(
        not gaps,
        wanted=f"a validated foreign key to {settings.tenancy.organizations_table} on every tenant column",
        observed=f"{len(gaps)} missing or NOT VALID" if gaps else f"{len(tenancy.tables)} validated",
        evidence=gaps,
        identity=lambda gap: gap.table,
    )


def test_tenant_columns_indexed(tenancy, signoff):
    """Verify foreign keys created: every tenant column leads an index, for scoped queries."""
    gaps = tenancy.index_gaps()
    signoff.check(
        not gaps,
        wanted=f'a valid index led by "{tenancy.column_name}" on every tenant-scoped table',
        observed=f"{len(gaps)} tables without one" if gaps else f"{len(tenancy.tables)} indexed",
        evidence=gaps,
        identity=lambda gap: gap.table,
    )


def test_no_invalid_index_or_unvalidated_constraint(catalog, signoff):
    """Monitor for errors: no invalid index and no unvalidated constraint left by a migration."""
    broken = catalog.broken_objects()
    signoff.check(
        not broken,
        wanted=f"0 invalid indexes and 0 NOT VALID constraints in schemas {', '.join(catalog.schemas)}",
        observed=f"{len(broken)} found" if broken else "none found",
        evidence=broken,
        identity=lambda b: b.name,
    )


def test_balance_table_and_trigger(balance_trigger, catalog, settings, signoff):
    """Verify trigger created: the balance trigger is enabled on the ledger for insert, update and delete."""
    balance = settings.balance
    signoff.require(catalog.table(balance.table), f"balance table {balance.table}")
    ledger = signoff.require(catalog.table(balance.ledger), f"ledger table {balance.ledger}")
    triggers = catalog.triggers(ledger)
    trigger = next((t for t in triggers if t.name == balance.trigger), None)
    problems = []
    if trigger is None:
        problems.append("not found")
    else:
        if not trigger.enabled:
            problems.append("disabled")
        if not trigger.row_level:
            problems.append("statement-level, not FOR EACH ROW")
        if missing := BALANCE_EVENTS - trigger.events:
            problems.append(f"does not fire on {', '.join(sorted(missing))}")
        if balance.function and trigger.function != balance.function:
            problems.append(f"calls {trigger.function}(), not {balance.function}()")
    signoff.check(
        not problems,
        wanted=f"{balance.trigger} on {ledger}: enabled, row-level, INSERT/UPDATE/DELETE"
        + (f", calls {balance.function}()" if balance.function else ""),
        observed=f"{balance.trigger}: {'; '.join(problems)}" if problems else f"{balance.trigger}: as wanted",
        evidence=[
            {
                "trigger": t.name,
                "enabled": t.enabled,
                "events": "/".join(sorted(t.events)),
                "timing": t.timing,
                "function": t.function,
            }
            for t in triggers
        ],
    )


def test_applied_migrations_match_release(migration_history, catalog, release, rehearsal, settings, signoff):
    """Review migration scripts: the migrations applied are the release's files, unchanged, none pending or unknown."""
    if release is None:
        signoff.not_applicable("a release migration folder to compare with", NOT_CONFIGURED)
    history = _history(migration_history, catalog, settings, signoff)
    problems = compare_status(history, release)
    unseen = uncompared(history, release)
    steps = [s for s in rehearsal.steps if s.error] if rehearsal else []
    rehearsed = f"; {rehearsal.summary()}" if rehearsal else ""
    signoff.check(
        not problems and not steps,
        wanted=f"the {len(release.migrations)} migrations of {release.where()} applied"
        + (" with their checksums" if any(m.digest for m in release.migrations) else "") + ", no other",
        observed=(f"{len(problems)} differ" if problems else f"all {len(release.migrations)} applied as released")
        # Said, so that a pass is not read as their checksums compared.
        + (f"; checksum not compared for {len(unseen)}: {', '.join(unseen)}" if unseen else "")
        + (f"; {len(steps)} after_migrate step(s) failed" if steps else "")
        + rehearsed,
        evidence=[*problems, *steps] or [m.evidence() for m in (rehearsal.migrations if rehearsal else ())],
    )


def test_schema_matches_release(catalog, release, release_schema, settings, signoff):
    """Test on staging database first: the schema is what the release's migrations build, nothing more or less."""
    if release is None:
        signoff.not_applicable("a release migration folder to build the schema from", NOT_CONFIGURED)
    if release_schema is None:
        signoff.not_applicable(f"the schema {release.tool}'s migrations build (code, not plain SQL)",
                               '[migration] apply = "<the tool\'s migrate command>" not set')
    if isinstance(release_schema, ReleaseError):
        signoff.check(False, wanted="the release's migrations build a schema", observed=str(release_schema))
    have = describe_schema(catalog.conn, catalog.schemas, skip_tables=history_tables(settings))
    drifts = compare_schema(have, release_schema.schema, settings.migration.ignore)
    counts = {c: sum(d.change == c for d in drifts) for c in ("extra", "missing", "changed")}
    signoff.check(
        not drifts,
        wanted=f"the {len(release_schema.schema)} objects {release.where()} build{'' if release.extra_folders else 's'} ({release_schema.how()})"
        + (f", ignoring {', '.join(settings.migration.ignore)}" if settings.migration.ignore else ""),
        observed=", ".join(f"{n} {c}" for c, n in counts.items() if n) if drifts else "no drift",
        evidence=drifts,
        identity=lambda d: d.object,
    )
