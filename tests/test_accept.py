"""Accepted exceptions ([[accept]]), advisory criteria and `postdeploy accept`: whole runs of the
suite on a real database where three tenant tables lack their tenant index (the catalogue's
missing_tenant_index fault), and the configuration they are read from."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest

from postdeploy.reference import apply_fault
from postdeploy.report import markdown, page
from postdeploy.report.model import Criterion, RunInfo, SignoffRun
from postdeploy.signoff.evidence import Outcome
from postdeploy.signoff.settings import ConfigError, load_settings, today
from postdeploy.signoff.verdict import NOT_APPLICABLE, Result, decide

from test_report import CHROMIUM, needs_chromium
from conftest import EMBEDDED_ONLY

INDEXED = "test_tenant_columns_indexed"
UNINDEXED = ("User", "Location", "StockMovement")  # what missing_tenant_index drops
MIGRATION_AREA = ("-m", "post_deploy and migration")  # the criteria of the area: a run of a few seconds
# ... and so a partial GO at best (exit 7), naming the success criteria it left out.
PARTIAL = ("SIGN-OFF: PARTIAL GO - not selected: Zero data loss, Application functioning normally, Tenant isolation"
           " verified, Balance queries working, Monitoring configured, Backups automated, No critical errors in logs; ")


def entry(criterion: str = INDEXED, objects: tuple[str, ...] = UNINDEXED, *, days: int = 30,
          expires: str | None = None, ticket: str = "CHG-101") -> str:
    expires = expires or (today() + timedelta(days=days)).isoformat()
    return (
        f'\n[[accept]]\ncriterion = "{criterion}"\nobjects = {json.dumps(list(objects))}\n'
        f'reason = "Prisma creates no index for a foreign key; the indexes ship next sprint"\n'
        f'ticket = "{ticket}"\napproved_by = "Change board (A. Rivera)"\nexpires = {expires}\n'
    )


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "accept.toml"
    path.write_text(text)
    return str(path)


def last_line(run) -> str:
    return run.output.rstrip().splitlines()[-1]


def indexed(run) -> dict:
    (criterion,) = [c for c in run.signoff["criteria"] if c["name"] == INDEXED]
    return criterion


@pytest.fixture
def unindexed_url(healthy_url: str) -> str:
    apply_fault(healthy_url, "missing_tenant_index")
    return healthy_url


# The configuration.


@pytest.mark.parametrize(("body", "message"), [
    (entry(criterion="test_tenant_column_indexed"),
     "[[accept]] entry 1: criterion names no criterion: 'test_tenant_column_indexed' (did you mean test_tenant_columns_indexed"),
    (re.sub(r"expires = .*\n", "", entry()), "[[accept]] entry 1: expires is required (a date, e.g. 2026-03-31)"),
    (entry(days=91), "expires {} is more than 90 days ahead (signoff.max_accept_days"),
    ("[signoff]\nmax_accept_days = 200\n" + entry(days=91), None),
    (entry(expires='"tomorrow"'), "[[accept]] entry 1: expires must be a date (e.g. 2026-03-31), got 'tomorrow'"),
    (entry(objects=()), "[[accept]] entry 1: objects must not be empty"),
    ('[signoff]\nadvisory = ["test_no_such_thing"]\n', "signoff.advisory names no criterion: 'test_no_such_thing'"),
], ids=["unknown-criterion", "no-expiry", "too-far-ahead", "horizon-raised", "not-a-date", "no-objects", "unknown-advisory"])
def test_bad_entries_are_one_line_config_errors(tmp_path, body, message):
    path = Path(config(tmp_path, body))
    if message is None:
        assert load_settings(path, explicit=True).accept[0].criterion == INDEXED
        return
    with pytest.raises(ConfigError) as err:
        load_settings(path, explicit=True)
    expected = message.format((today() + timedelta(days=91)).isoformat())
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_expiry_as_toml_date_or_iso_string(tmp_path):
    day = (today() + timedelta(days=10)).isoformat()
    for written in (day, f'"{day}"'):
        (accepted,) = load_settings(Path(config(tmp_path, entry(expires=written))), explicit=True).accept
        assert accepted.expires.isoformat() == day


def test_invalid_entry_stops_the_run_with_exit_4(run_suite, tmp_path):
    run = run_suite("-m", "post_deploy", "--postdeploy-config", config(tmp_path, entry(days=400)))
    assert run.exit_code == 4, run.output
    assert "more than 90 days ahead (signoff.max_accept_days" in run.output
    assert "Traceback" not in run.output and not any(run.report_dir.iterdir())


# The outcomes, on a database where three tenant tables lack their tenant index.


@EMBEDDED_ONLY
def test_all_offending_objects_accepted_is_go_with_its_own_count(server, unindexed_url, run_suite, tmp_path):
    run = run_suite(*MIGRATION_AREA, "--postdeploy-config", config(tmp_path, entry()), database_url=unindexed_url)
    assert run.exit_code == 7, run.output
    assert last_line(run) == PARTIAL + "8 passed, 1 accepted, 2 not applicable, 29 not selected"
    criterion = indexed(run)
    assert criterion["outcome"] == "accepted" and criterion["objects"] == list(UNINDEXED)
    (cover,) = criterion["acceptances"]
    assert (cover["ticket"], cover["approved_by"], cover["days_left"], cover["expired"]) == (
        "CHG-101", "Change board (A. Rivera)", 30, False)
    assert run.signoff["accepted"][0]["objects"] == list(UNINDEXED)
    assert "ACCEPTED: test_tenant_columns_indexed: User, Location, StockMovement (CHG-101" in run.output
    # JUnit: a skipped (xfail) test case whose properties name the acceptance; no failure.
    case = next(c for c in ET.parse(run.folder / "junit.xml").getroot().iter("testcase") if c.get("name") == INDEXED)
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert json.loads(properties["acceptances"])[0]["ticket"] == "CHG-101"
    assert case.find("failure") is None and case.find("skipped") is not None
    text = (run.folder / "sign-off.md").read_text()
    assert "### Accepted exceptions" in text
    assert "| `test_tenant_columns_indexed` | User, Location, StockMovement | Change board (A. Rivera) |" in text
    with sqlite3.connect(run.report_dir / "history.sqlite") as conn:
        assert conn.execute("SELECT criterion, objects, ticket FROM acceptance").fetchall() == [
            (INDEXED, "User, Location, StockMovement", "CHG-101")]
        assert conn.execute("SELECT outcome FROM criterion WHERE name = ?", (INDEXED,)).fetchone() == ("accepted",)


@EMBEDDED_ONLY
def test_partly_accepted_fails_naming_only_the_uncovered(server, unindexed_url, run_suite, tmp_path):
    run = run_suite(*MIGRATION_AREA, "--postdeploy-config", config(tmp_path, entry(objects=("User", "Location"))),
                    database_url=unindexed_url)
    assert run.exit_code == 1, run.output
    assert last_line(run) == "SIGN-OFF: NO-GO - 8 passed, 1 failed, 2 not applicable, 29 not selected"
    criterion = indexed(run)
    assert criterion["outcome"] == "failed"
    assert "not accepted: StockMovement;" in criterion["observed"]
    assert [row["table"] for row in criterion["evidence"]] == ["StockMovement"]


@EMBEDDED_ONLY
def test_expired_acceptance_fails_naming_its_date_and_ticket(server, unindexed_url, run_suite, tmp_path):
    expired = (today() - timedelta(days=3)).isoformat()
    run = run_suite(*MIGRATION_AREA, "--postdeploy-config", config(tmp_path, entry(expires=expired, ticket="CHG-77")),
                    database_url=unindexed_url)
    assert run.exit_code == 1, run.output
    assert indexed(run)["outcome"] == "failed"
    assert f"acceptance of User, Location, StockMovement expired on {expired} (CHG-77)" in run.output


@EMBEDDED_ONLY
def test_acceptance_never_hides_another_criterion_or_another_object(server, unindexed_url, run_suite, tmp_path):
    # The right objects under another criterion, and another object under the right one.
    text = entry(criterion="test_tenant_foreign_keys_validated") + entry(objects=("InventoryItem",))
    run = run_suite(*MIGRATION_AREA, "--postdeploy-config", config(tmp_path, text), database_url=unindexed_url)
    assert run.exit_code == 1, run.output
    assert indexed(run)["outcome"] == "failed" and not indexed(run)["acceptances"]
    assert [row["table"] for row in indexed(run)["evidence"]] == list(UNINDEXED)
    unused = run.signoff["unused_acceptances"]
    assert len(unused) == 2 and unused[0].startswith("unused acceptance: test_tenant_foreign_keys_validated: ")


@EMBEDDED_ONLY
def test_unused_acceptance_beside_a_passing_run_is_one_non_blocking_line(server, healthy_url, run_suite, tmp_path):
    run = run_suite(*MIGRATION_AREA, "--postdeploy-config", config(tmp_path, entry()), database_url=healthy_url)
    assert run.exit_code == 7, run.output
    lines = run.output.rstrip().splitlines()
    assert lines[-1] == PARTIAL + "9 passed, 2 not applicable, 29 not selected"
    assert lines[-2].startswith("unused acceptance: test_tenant_columns_indexed: User, Location, StockMovement (CHG-101")
    assert "unused acceptance: test_tenant_columns_indexed" in (run.folder / "sign-off.md").read_text()


@EMBEDDED_ONLY
def test_failing_advisory_criterion_warns_and_never_blocks(server, unindexed_url, run_suite, tmp_path):
    text = f'[signoff]\nadvisory = ["{INDEXED}"]\n'
    run = run_suite(*MIGRATION_AREA, "--postdeploy-config", config(tmp_path, text), database_url=unindexed_url)
    assert run.exit_code == 7, run.output
    assert last_line(run) == PARTIAL + "8 passed, 1 advisory failed, 2 not applicable, 29 not selected"
    assert indexed(run)["outcome"] == "advisory failed"
    assert "ADVISORY FAILED: test_tenant_columns_indexed: 3 tables without one" in run.output
    assert "### Advisory failed" in (run.folder / "sign-off.md").read_text()
    # Another criterion's failure still blocks.
    apply_fault(unindexed_url, "dropped_tenant_fk")
    run = run_suite(*MIGRATION_AREA, "--postdeploy-config", config(tmp_path, text), database_url=unindexed_url, reports="second")
    assert last_line(run) == "SIGN-OFF: NO-GO - 7 passed, 1 advisory failed, 1 failed, 2 not applicable, 29 not selected"


@EMBEDDED_ONLY
@needs_chromium
def test_accepted_exception_is_visible_without_scrolling(server, unindexed_url, run_suite, tmp_path):
    """The whole suite (most criteria skipped without an app): the page's first screen at 1400 x 900."""
    run = run_suite("-m", "post_deploy", "--postdeploy-config", config(tmp_path, entry()), database_url=unindexed_url)
    html = (run.folder / "sign-off.html").read_text()
    # A copy with a probe that records where the section is laid out (the report itself has no script).
    probe = ("<script>addEventListener('load', () => { const r = document.getElementById('exceptions')"
             ".getBoundingClientRect(); document.body.dataset.probe = JSON.stringify([r.top, r.bottom, innerHeight]); });"
             "</script></body>")
    copy = tmp_path / "probe.html"
    copy.write_text(html.replace("</body>", probe))
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium'}",
                           "--window-size=1400,900", "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120)
    top, bottom, height = json.loads(re.search(r'data-probe="([^"]+)"', done.stdout).group(1).replace("&quot;", '"'))
    assert 0 < top < bottom <= height <= 900, (top, bottom, height)
    section = re.search(r'<section id="exceptions">.*?</section>', done.stdout, re.S).group()
    for shown in ("test_tenant_columns_indexed", "User, Location, StockMovement", "Change board (A. Rivera)",
                  "CHG-101", "30 (expires", "the indexes ship next sprint"):
        assert shown in section


# What a success criterion stood on.


def _result(name: str, outcome: str) -> Result:
    record = Outcome("health", f"item of {name}", "wanted", "observed", [], outcome != NOT_APPLICABLE,
                     '[app] enabled = false' if outcome == NOT_APPLICABLE else "")
    return Result(f"verifications/test_health.py::{name}", outcome, "", record)


def _run(results: list[Result]) -> SignoffRun:
    verdict = decide(results, {"health"}, [])
    return SignoffRun(RunInfo("demo", "inventory", "PostgreSQL 18", "", "", "ops", "2026-03-14 09:00:00", "2026-03-14 09:01:00"),
                      verdict, [Criterion.of(r, 0.01, verdict) for r in results], ["health"], [], "demo-x")


def test_mostly_not_applicable_success_criterion_says_what_was_checked():
    app = ("test_liveness_endpoint", "test_readiness_endpoint", "test_deployed_version", "test_login",
           "test_protected_endpoints_refuse_bad_tokens", "test_inventory_queries")
    results = [_result(n, NOT_APPLICABLE) for n in app] + [_result("test_database_health", "passed")]
    run = _run(results)
    line = next(line for line in run.lines if line.title == "Application functioning normally")
    assert (line.status, line.note) == ("GO", "database health only: 1 of 7 checks applicable")
    assert "| Application functioning normally | ✅ GO (database health only: 1 of 7 checks applicable) |" in markdown.render(run)
    assert '<span class="status">GO</span><span class="note">(database health only: 1 of 7 checks applicable)</span>' in page.render(run)
    assert "declared in the configuration: [app] enabled = false" in page.render(run)
    # Half or more applicable: no note.
    assert not _run(results[5:]).lines[2].note


# postdeploy accept.


def _accept(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "postdeploy.cli", "accept", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_accept_command_appends_a_valid_entry_and_keeps_the_file(tmp_path):
    path = tmp_path / "postdeploy.toml"
    path.write_text('# our gate\n[signoff]\nrequired_areas = ["migration", "tenancy"]  # no app yet\n')
    args = ["--criterion", INDEXED, "--objects", "User, Location,StockMovement", "--reason", "next sprint",
            "--ticket", "CHG-9", "--approved-by", "CAB", "--days", "30"]
    done = _accept(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expires = today() + timedelta(days=30)
    assert done.stdout.strip() == f"postdeploy.toml: accepted User, Location, StockMovement for {INDEXED} until {expires} (CHG-9)"
    text = path.read_text()
    assert text.startswith('# our gate\n[signoff]\nrequired_areas = ["migration", "tenancy"]  # no app yet\n\n[[accept]]\n')
    assert f"\nexpires = {expires}\n" in text  # a TOML date
    (accepted,) = load_settings(path, explicit=True).accept
    assert (accepted.objects, accepted.ticket, accepted.approved_by, accepted.expires) == (UNINDEXED, "CHG-9", "CAB", expires)
    # A second entry goes after the first; another file with --config.
    assert _accept(*args[:-1], "10", cwd=tmp_path).returncode == 0
    assert len(load_settings(path, explicit=True).accept) == 2
    other = tmp_path / "staging.toml"
    assert _accept(*args, "--config", str(other), cwd=tmp_path).returncode == 0
    assert load_settings(other, explicit=True).accept[0].criterion == INDEXED


@pytest.mark.parametrize(("change", "message"), [
    (("--criterion", "test_tenant_column_indexed"), "--criterion names no criterion: 'test_tenant_column_indexed'"),
    (("--days", "91"), "--days 91 is more than signoff.max_accept_days (90)"),
    (("--objects", " , "), "[[accept]] entry 1: objects must not be empty"),
], ids=["unknown-criterion", "too-many-days", "no-objects"])
def test_accept_command_refuses_what_the_sign_off_would(tmp_path, change, message):
    values = {"--criterion": INDEXED, "--objects": "User", "--reason": "r", "--ticket": "T", "--approved-by": "C", "--days": "5"}
    values[change[0]] = change[1]
    done = _accept(*[x for pair in values.items() for x in pair], cwd=tmp_path)
    assert done.returncode == 4 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "postdeploy.toml").exists()
