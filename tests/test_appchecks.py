"""Unit tests: readiness bodies in the common conventions, log lines since the deploy, alert routes;
the bad-token battery against the reference app."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from postdeploy import reference
from postdeploy.app.access import AppIdentity
from postdeploy.app.http import AppClient, Reply
from postdeploy.app.tokens import MALFORMED, NO_TOKEN, attempt_rows, forgeries, try_bad_tokens
from postdeploy.monitoring.alerting import AlertRoutes
from postdeploy.reference.app import FAULT_VARIABLE
from postdeploy.app.checks import Sessions, parse_readiness
from postdeploy.app.logscan import LogSource
from postdeploy.signoff.settings import AppSettings, LogSettings

FIELDS = ("releaseId", "version")


def reply(text: str, content_type: str = "application/json", status: int = 200) -> Reply:
    return Reply("GET", "/readyz", status, 5.0, content_type, text)


def test_health_json_with_a_warning_passes_and_records_it():
    body = {"status": "pass", "releaseId": "v2", "checks": {
        "db:connection": [{"status": "pass"}], "cache:memory": [{"status": "warn", "output": "85% used"}]}}
    ready = parse_readiness(reply(json.dumps(body), "application/health+json"), FIELDS)
    assert (ready.format, ready.status, ready.release) == ("health+json", "pass", "v2")
    assert not ready.failing and [c.name for c in ready.warnings] == ["cache:memory"]


def test_terminus_style_json_reports_failures():
    body = {"status": "error", "info": {"db": {"status": "up"}}, "error": {"redis": {"status": "down"}}}
    ready = parse_readiness(reply(json.dumps(body)), FIELDS)
    assert ready.status == "fail" and [c.name for c in ready.failing] == ["redis"]


def test_kubernetes_text_bodies():
    ok = parse_readiness(reply("[+]ping ok\n[+]db ok\nreadyz check passed\n", "text/plain"), FIELDS)
    assert ok.status == "pass" and len(ok.checks) == 2 and not ok.failing
    bad = parse_readiness(reply("[+]ping ok\n[-]db failed: reason withheld\nreadyz check failed\n", "text/plain"), FIELDS)
    assert bad.status == "fail" and [c.name for c in bad.failing] == ["db"]


def test_log_lines_count_from_the_deploy_start(tmp_path: Path):
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    log = tmp_path / "api.log"
    log.write_text(
        "2026-03-01T11:59:00Z ERROR before the deploy\n"
        "    at stack line of the old error\n"
        "2026-03-01T12:00:05Z INFO started\n"
        '{"level":"error","time":"2026-03-01T12:01:00Z","msg":"unhandled rejection","password":"hunter22"}\n'
        "2026-03-01 12:02:00,123 FATAL out of memory\n"
    )
    old = (start - timedelta(days=1)).timestamp()
    os.utime(log, (old, old))
    source = LogSource.choose(type("T", (), {"log_files": str(tmp_path / "*.log")})(), LogSettings())
    scan = source.scan(start, LogSettings().patterns)
    assert [m.line_no for m in scan.matches] == [4, 5]
    assert "hunter22" not in scan.matches[0].line
    assert scan.lines_since == 3


def test_log_command_failure_is_one_line():
    source = LogSource(command=("sh", "-c", "echo 'token expired' >&2; exit 3"))
    try:
        source.scan(datetime.now(UTC), LogSettings().patterns)
    except Exception as err:  # LogSourceError
        assert "exit status 3: token expired" in str(err)
    else:
        raise AssertionError("expected a LogSourceError")


def test_alert_route_shapes():
    good = AlertRoutes("https://hooks.slack.com/services/T000/B000/abcdefabcdef", "a" * 32, "https://events.example/v2/enqueue")
    assert good.problems() == [] and len(good.describe()) == 2
    assert "abcdefabcdef" not in " ".join(good.describe())
    bad = AlertRoutes("http://hooks.slack.com/services/T000/B000/x", "short", "https://events.example/v2/enqueue")
    assert len(bad.problems()) == 2


# The bad-token battery against the reference app, healthy and with each token fault.

_FORGED = {"claims changed (signature kept)", "alg none (empty signature)", "signature stripped",
           "signed with the suite's own key", "organization set to B's (signature kept)"}
TOKEN_FAULTS = {
    "": set(),
    "no_token_accepted": {NO_TOKEN},
    "tampered_token_accepted": _FORGED,
    "alg_none_accepted": {"alg none (empty signature)"},
    "stripped_signature_accepted": {"signature stripped"},
    "foreign_key_accepted": {"signed with the suite's own key", "organization set to B's (signature kept)"},
}


@pytest.mark.parametrize("fault", TOKEN_FAULTS, ids=lambda f: f or "healthy")
def test_token_battery_names_what_gets_in(fault, server, healthy_url, reference_app):
    if server.label != "embedded":
        pytest.skip("the app's token check does not depend on the database server: run on the embedded one")
    deployment = reference_app(healthy_url, env={FAULT_VARIABLE: fault})
    a, b = reference.IDENTITIES[0], reference.IDENTITIES[2]
    client = AppClient(deployment.env["APP_URL"], 10)
    try:
        token = Sessions(client, AppSettings()).token(AppIdentity("A", a.org_id, a.email, a.password))
        attempts = try_bad_tokens(client, "/api/inventory", token, a.org_id, b.org_id)
    finally:
        client.close()
    names = [x.name for x in attempts]
    assert names[:2] == [NO_TOKEN, MALFORMED] and set(names[2:]) == _FORGED and len(names) == 7
    assert {x.name for x in attempts if not x.refused} == TOKEN_FAULTS[fault]
    rows = attempt_rows(attempts)
    assert len(rows) <= 2 and sorted("; ".join(r["attempts"] for r in rows).split("; ")) == sorted(names)
    assert {n for r in rows if r["status"] != "401" for n in r["attempts"].split("; ")} == TOKEN_FAULTS[fault]
    shown = json.dumps(rows)
    assert token not in shown and all(f not in shown for f in forgeries(token, a.org_id, b.org_id).values())


def test_forgeries_of_a_jwt_keep_what_they_claim_to_keep():
    key = b"k" * 32
    token = jwt.encode({"sub": "u1", "orgId": "org-a", "exp": 4_000_000_000}, key, algorithm="HS256",
                       headers={"kid": "k1"})
    forged = forgeries(token, "org-a", "org-b")
    head, payload, signature = token.split(".")
    assert forged["signature stripped"] == f"{head}.{payload}."
    assert forged["claims changed (signature kept)"].endswith(f".{signature}")
    moved = forged["organization set to B's (signature kept)"]
    assert moved.endswith(f".{signature}") and jwt.decode(moved, options={"verify_signature": False})["orgId"] == "org-b"
    none = forged["alg none (empty signature)"]
    assert none.endswith(".") and jwt.get_unverified_header(none) == {"alg": "none", "typ": "JWT", "kid": "k1"}
    own = forged["signed with the suite's own key"]
    assert jwt.decode(own, options={"verify_signature": False})["sub"] == "u1"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(own, key, algorithms=["HS256"])
    # Without B's organization, or without a claim holding A's, the move cannot be made.
    assert forgeries(token, "org-a", None)["organization set to B's (signature kept)"] is None
    assert forgeries(token, "org-z", "org-b")["organization set to B's (signature kept)"] is None


def test_an_opaque_token_gets_a_changed_character_only():
    forged = forgeries("opaque-session-token-0123456789", "org-a", "org-b")
    assert list(forged) == ["token with a character changed"]
    changed = forged["token with a character changed"]
    assert len(changed) == 31 and changed != "opaque-session-token-0123456789"


def test_the_targets_log_source_wins_over_the_configs():
    config = LogSettings(files="/var/log/app/*.log", command=("railway", "logs"))
    target = type("T", (), {"log_files": None, "log_command": "journalctl -u app"})()
    assert LogSource.choose(target, config).command == ("journalctl", "-u", "app")
    target = type("T", (), {"log_files": "/srv/app.log", "log_command": "journalctl -u app"})()
    assert LogSource.choose(target, config).files == "/srv/app.log"
    assert LogSource.choose(object(), config).files == "/var/log/app/*.log"
    assert LogSource.choose(object(), LogSettings(command=("railway", "logs"))).command == ("railway", "logs")
