"""Step 5: the application functions normally: health endpoints, login, inventory, logs, database."""

import pytest

from postdeploy.app import dbhealth
from postdeploy.app.checks import item_problems, parse_readiness, rows_of, version_from
from postdeploy.app.tokens import attempt_rows, try_bad_tokens

pytestmark = [pytest.mark.post_deploy, pytest.mark.health]


def test_liveness_endpoint(app, settings, signoff):
    """Test health endpoints: /healthz answers 200 within its latency budget."""
    budget = settings.app.liveness_budget_ms
    reply = app.get(settings.app.liveness_path)
    signoff.check(
        reply.status == 200 and reply.elapsed_ms <= budget,
        wanted=f"200 within {budget} ms",
        observed=f"{reply.status} in {reply.elapsed_ms:.0f} ms",
        evidence=[{"request": reply.summary(), "body": reply.excerpt()}],
        identity=lambda _: settings.app.liveness_path,  # the endpoint
    )


def test_readiness_endpoint(app, settings, signoff):
    """Test health endpoints: /readyz answers 200 and reports every check passing."""
    budget = settings.app.readiness_budget_ms
    reply = app.get(settings.app.readiness_path)
    ready = parse_readiness(reply, settings.app.version_fields)
    problems = []
    if reply.status != 200:
        problems.append(f"status {reply.status}")
    if reply.elapsed_ms > budget:
        problems.append(f"{reply.elapsed_ms:.0f} ms over the {budget} ms budget")
    if ready.status == "fail":
        problems.append("body status fail")
    problems += [f"check {c.name} failing" for c in ready.failing]
    checks = f"{len(ready.checks)} checks, {len(ready.failing)} failing, {len(ready.warnings)} warning"
    signoff.check(
        not problems,
        wanted=f"200 within {budget} ms, status pass, every check passing (warn recorded)",
        observed=f"{reply.status} in {reply.elapsed_ms:.0f} ms, {ready.format} status {ready.status or 'not given'}, "
        + checks
        + (f" ({'; '.join(problems)})" if problems else ""),
        evidence=[{"check": c.name, "status": c.status, "detail": c.detail} for c in ready.failing + ready.warnings]
        or [{"check": c.name, "status": c.status, "detail": c.detail} for c in ready.checks],
        identity=lambda _: settings.app.readiness_path,  # the endpoint
    )


def test_deployed_version(app, settings, expected_release, signoff):
    """Deploy updated code: the deployed version is the expected release."""
    path = settings.app.version_path or settings.app.readiness_path
    reply = app.get(path)
    deployed = version_from(reply, settings.app.version_fields)
    expected = expected_release
    fields = "/".join(settings.app.version_fields)
    if deployed is None:
        signoff.check(False, wanted=f"a version ({fields}) at {path}", observed=f"none found ({reply.summary()})",
                      evidence=[{"request": reply.summary(), "body": reply.excerpt()}])
    signoff.check(
        not expected or deployed == expected,
        wanted=f"release {expected}" if expected else "a deployed version (no expected release: give --postdeploy-release or RELEASE_VERSION)",
        observed=f"{deployed} (from {path})",
    )


def test_login(app, user_a, sessions, settings, signoff):
    """Test authentication: the test user logs in, its token reaches a protected endpoint; a wrong password is refused."""
    login = sessions.login(user_a)
    protected = app.get(settings.app.inventory_path, token=login.token)
    problems, evidence = [], []
    how = "token given" if login.reply is None else login.reply.summary()
    if not protected.ok:
        problems.append(f"token refused by {settings.app.inventory_path} ({protected.status})")
    evidence.append({"request": how, "answer": "token received" if login.reply else ""})
    evidence.append({"request": protected.summary(), "answer": "" if protected.ok else protected.excerpt()})
    if user_a.can_log_in:
        wrong, token = sessions.log_in(user_a, password=user_a.password + "-wrong")
        if wrong.status != 401 or token:
            problems.append(f"a wrong password got {wrong.status}" + (" and a token" if token else ""))
        evidence.append({"request": wrong.summary() + " (wrong password)", "answer": wrong.excerpt()})
    signoff.check(
        not problems,
        wanted="login answers a token that reaches a protected endpoint; a wrong password gets 401",
        observed="; ".join(problems) or f"{how}; protected {protected.status}; wrong password 401",
        evidence=evidence,
    )


def test_protected_endpoints_refuse_bad_tokens(app, user_a, sessions, target, settings, signoff):
    """Test authentication: no token, a malformed token and each token forged from A's get 401."""
    path = settings.app.inventory_path
    other = target.identity("B")
    attempts = try_bad_tokens(app, path, sessions.token(user_a), user_a.org_id, other.org_id if other else None)
    got_in = [a for a in attempts if not a.refused]
    tried = [a for a in attempts if a.reply is not None]
    signoff.check(
        not got_in,
        wanted=f"401 from {path} for each",
        observed=(f"got in: {'; '.join(f'{a.name} ({a.reply.status})' for a in got_in)}; " if got_in else "")
        + f"{len(tried) - len(got_in)} of {len(tried)} refused with 401"
        + "".join(f"; {a.name} not tried: {a.note}" for a in attempts if a.reply is None),
        evidence=attempt_rows(attempts),
    )


def test_inventory_queries(app, user_a, sessions, settings, signoff):
    """Test inventory queries: A's list answers 200, with well-formed items all of A's organization, within budget."""
    budget = settings.app.inventory_budget_ms
    reply = app.get(settings.app.inventory_path, token=sessions.token(user_a))
    rows = rows_of(reply, settings.app.list_fields)
    problems = item_problems(rows or [], settings.app, user_a.org_id)
    ok = reply.status == 200 and rows is not None and not problems and reply.elapsed_ms <= budget
    signoff.check(
        ok,
        wanted=f"200 within {budget} ms, a list of items with {settings.app.id_field}, all of {user_a.org_id}",
        observed=f"{reply.status} in {reply.elapsed_ms:.0f} ms, "
        + (f"{len(rows)} items, {len(problems)} not well-formed or not of {user_a.org_id}" if rows is not None
           else f"no item list in the body ({reply.content_type or 'no content type'})"),
        evidence=problems or ([] if rows is not None else [{"request": reply.summary(), "body": reply.excerpt()}]),
    )


def test_no_critical_errors_in_logs(log_source, log_since, settings, signoff):
    """Verify no errors in logs: no critical error line since the deploy started."""
    scan = log_source.scan(log_since, settings.logs.patterns, ignore_case=settings.logs.ignore_case)
    since = log_since.strftime("%Y-%m-%d %H:%M:%S UTC")
    signoff.check(
        not scan.matches,
        wanted=f"0 lines matching {' | '.join(settings.logs.patterns)} since {since}",
        observed=f"{len(scan.matches)} matching of {scan.lines_since} lines since the deploy ({scan.source})",
        evidence=scan.matches,
    )


def test_database_health(db, settings, signoff):
    """Monitor database performance: the server accepts connections, usage under its share, no stuck sessions."""
    limits = settings.database_health
    usage = dbhealth.connections(db)
    stuck = dbhealth.stuck_sessions(
        db, lock_wait_s=limits.max_lock_wait_s, idle_in_transaction_s=limits.max_idle_in_transaction_s
    )
    too_many = usage.share > limits.max_connection_share
    hidden = f"; {usage.not_visible} sessions' state not visible (grant pg_monitor)" if usage.not_visible else ""
    signoff.check(
        not too_many and not stuck,
        wanted=f"connections under {limits.max_connection_share:.0%} of {usage.available}; no lock wait over "
        f"{limits.max_lock_wait_s} s; no idle-in-transaction over {limits.max_idle_in_transaction_s} s",
        observed=f"{usage.in_use} of {usage.available} connections ({usage.share:.0%}); "
        f"{sum(s.kind.startswith('waiting') for s in stuck)} lock waits, "
        f"{sum(s.kind.startswith('idle') for s in stuck)} idle in transaction over the limits{hidden}",
        evidence=stuck,
    )
