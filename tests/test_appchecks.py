"""Unit tests: readiness bodies in the common conventions, log lines since the deploy, alert routes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fixtures.monitoring.alerting import AlertRoutes
from fixtures.app.checks import parse_readiness
from fixtures.app.http import Reply
from fixtures.app.logscan import LogSource
from fixtures.signoff.settings import LogSettings

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
