"""Test tenant isolation: try cross-org access through the running application."""

import pytest

from postdeploy.tenancy import rls
from postdeploy.app.checks import leaked_values, rows_of

pytestmark = [pytest.mark.post_deploy, pytest.mark.tenancy]


def b_item_of(app, user_b, sessions, settings):
    """One of organization B's items, as B sees it: the data A must never get."""
    reply = app.get(settings.app.inventory_path, token=sessions.token(user_b))
    rows = [r for r in rows_of(reply, settings.app.list_fields) or [] if isinstance(r, dict)]
    mine = [r for r in rows if str(r.get(settings.app.org_field)) == user_b.org_id and r.get(settings.app.id_field)]
    if not mine:
        pytest.fail(
            f"test user B ({user_b.describe()}) sees no item of {user_b.org_id}: {reply.summary()}; "
            "give B an organization with at least one item",
            pytrace=False,
        )
    return mine[0]


def _b_values(item, settings):
    """B's identifying values; short generic ones (quantities) are left out."""
    return [str(v) for k, v in item.items() if k != settings.app.org_field and isinstance(v, str) and len(v) >= 4]


def test_cross_org_item_refused(app, user_a, user_b, sessions, settings, signoff):
    """Test tenant isolation: A cannot read B's item by id (403 or 404, none of B's data in the body)."""
    b_item = b_item_of(app, user_b, sessions, settings)
    item_id = str(b_item[settings.app.id_field])
    reply = app.get(settings.app.item_path.replace("{id}", item_id), token=sessions.token(user_a))
    leaked = leaked_values(reply, [v for v in _b_values(b_item, settings) if v != item_id])
    signoff.check(
        reply.status in (403, 404) and not leaked,
        wanted="403 or 404, with none of B's data",
        observed=f"{reply.status} for B's item {item_id} as {user_a.org_id}"
        + (f"; body holds B's {', '.join(leaked)}" if leaked else ""),
        evidence=[] if reply.status in (403, 404) and not leaked else [{"request": reply.summary(), "body": reply.excerpt()}],
    )


def test_cross_org_list_clean(app, user_a, user_b, sessions, settings, signoff):
    """Test tenant isolation: A's inventory list contains no row of B (nor of any other organization)."""
    reply = app.get(settings.app.inventory_path, token=sessions.token(user_a))
    rows = rows_of(reply, settings.app.list_fields)
    foreign = [r for r in rows or [] if isinstance(r, dict) and str(r.get(settings.app.org_field)) != user_a.org_id]
    signoff.check(
        reply.status == 200 and rows is not None and not foreign,
        wanted=f"200, every row of {user_a.org_id}",
        observed=f"{reply.status}, {len(rows or [])} rows, {len(foreign)} of another organization",
        evidence=[{"id": r.get(settings.app.id_field), "org": r.get(settings.app.org_field)} for r in foreign],
    )


def test_cross_org_balances_refused(balances_kept, app, user_a, user_b, sessions, settings, signoff):
    """Test tenant isolation: A cannot read the balances of B's item."""
    b_item = b_item_of(app, user_b, sessions, settings)
    item_id = str(b_item[settings.app.id_field])
    reply = app.get(settings.app.balances_path, params={settings.app.balances_param: item_id},
                    token=sessions.token(user_a))
    rows = rows_of(reply, ("balances", *settings.app.list_fields))
    refused = reply.status in (403, 404) or (reply.ok and rows == [])
    signoff.check(
        refused,
        wanted="403 or 404 (or 200 with no rows)",
        observed=f"{reply.status}" + (f", {len(rows)} balance rows of B's item {item_id}" if rows else f" for B's item {item_id}"),
        evidence=[] if refused else [{"request": reply.summary(), "body": reply.excerpt()}],
    )


def test_explicit_org_override_refused(app, user_a, user_b, sessions, settings, signoff):
    """Test tenant isolation: a request naming B's organization (header or query parameter) is refused or ignored."""
    token = sessions.token(user_a)
    baseline = app.get(settings.app.inventory_path, token=token)
    already = {str(r.get(settings.app.id_field)) for r in rows_of(baseline, settings.app.list_fields) or [] if isinstance(r, dict)}
    attempts = {}
    if settings.app.org_header:
        attempts[f"header {settings.app.org_header}"] = app.get(
            settings.app.inventory_path, token=token, headers={settings.app.org_header: user_b.org_id})
    if settings.app.org_query_param:
        attempts[f"query {settings.app.org_query_param}"] = app.get(
            settings.app.inventory_path, token=token, params={settings.app.org_query_param: user_b.org_id})
    if not attempts:
        signoff.skip("neither app.org_header nor app.org_query_param is configured", blocking=False)
    leaks = {}
    for name, reply in attempts.items():
        rows = rows_of(reply, settings.app.list_fields) or []
        # Rows of B that only the override brought (a list that leaks anyway is test_cross_org_list_clean's).
        foreign = [r for r in rows if isinstance(r, dict) and str(r.get(settings.app.org_field)) == user_b.org_id
                   and str(r.get(settings.app.id_field)) not in already]
        if reply.ok and foreign:
            leaks[name] = (reply, len(foreign))
    signoff.check(
        not leaks,
        wanted=f"refused (4xx) or ignored (no {user_b.org_id} row beyond A's own list)",
        observed=", ".join(
            f"{name}: {r.status}" + (f" with {leaks[name][1]} rows of {user_b.org_id}" if name in leaks else
                                    " refused" if 400 <= r.status < 500 else " ignored")
            for name, r in attempts.items()
        ),
        evidence=[{"attempt": name, "request": r.summary(), f"rows of {user_b.org_id}": n} for name, (r, n) in leaks.items()],
    )


def test_row_level_security(db, tenancy, target, settings, signoff):
    """Verify tenant isolation in the database: RLS enabled and forced on every tenant table; a read as A sees no B row."""
    if not settings.rls.enabled:
        signoff.skip("row-level security is not used by this application ([rls] enabled = false)", blocking=False)
    org_a = target.identity("A").org_id if target.identity("A") else target.default_org_id
    signoff.require(org_a, "an organization to read as (APP_USER_A_ORG or DEFAULT_ORG_ID)")
    signoff.precondition(tenancy.unreadable(), wanted="every tenant-scoped table with its tenant column")
    states = rls.table_states(db, [t.table for t in tenancy.ready_tables])
    off = [s for s in states if not (s.enabled and s.forced and s.policies)]
    foreign = rls.foreign_rows_seen(db, tenancy, settings.rls, org_a)
    signoff.check(
        not off and not foreign,
        wanted=f"RLS enabled and forced, with a policy, on {len(states)} tenant tables; 0 foreign rows seen as {org_a}",
        observed=(f"{len(off)} tables without enabled+forced RLS; " if off else f"{len(states)} tables enabled and forced; ")
        + f"{sum(f.rows for f in foreign)} foreign rows seen as {org_a}"
        + (f" (role {settings.rls.role})" if settings.rls.role else ""),
        evidence=off + foreign,
    )
