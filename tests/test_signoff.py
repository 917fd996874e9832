"""Whole runs of the suite against the reference deployment: healthy, faulty, empty."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import pytest

from postdeploy.data.baseline import capture_to_file
from postdeploy.reference import FAULTS, apply_fault
from postdeploy.reference.loader import connect
from postdeploy.reference.variants import VARIANTS, apply_variant
from postdeploy.signoff.settings import AREAS, Settings
from postdeploy.signoff.verdict import PARTIAL_EXIT  # a run narrowed by -m/-k: a partial GO at best

# Criteria that are optional skips on a healthy deployment without extra options:
# delivery needs --postdeploy-send-test-alert, RLS the RLS variant ([rls] enabled), the restore --postdeploy-restore-test.
OPTIONAL = {"test_alert_delivery", "test_row_level_security", "test_restore_latest_backup"}


def test_healthy_deployment_is_go(server, healthy_url, run_suite, reference_app, tmp_path):
    baseline = str(tmp_path / "baseline.json")
    before = run_suite("-m", "baseline", "--postdeploy-baseline", baseline, database_url=healthy_url, reports="baseline-run")
    assert before.exit_code == 0, before.output
    assert before.outcomes("passed") == {"test_capture_baseline"}
    deployment = reference_app(healthy_url)
    run = run_suite("-m", "post_deploy", "--postdeploy-allow-writes", "--postdeploy-baseline", baseline,
                    database_url=healthy_url, env=deployment.env)
    assert run.exit_code == 0, run.output
    signoff = run.signoff
    criteria = len(signoff["criteria"])
    passed = criteria - len(OPTIONAL)
    assert run.output.rstrip().splitlines()[-1] == f"SIGN-OFF: GO - {passed} passed, {len(OPTIONAL)} optional skipped"
    assert signoff["verdict"] == "GO"
    assert len(run.outcomes("passed")) == passed
    assert run.outcomes("skipped") == OPTIONAL
    # Passing criteria record what they saw, not just a green dot; skips say why.
    assert all(c["wanted"] and c["observed"] for c in signoff["criteria"] if c["outcome"] == "passed")
    assert all(c["observed"].startswith("skipped: ") for c in signoff["criteria"] if c["outcome"] == "skipped")
    html = (run.folder / "sign-off.html").read_text()
    assert "SIGN-OFF: GO" in html and signoff["server_version"] in html
    assert "<script src=" not in html  # self-contained
    cases = ET.parse(run.folder / "junit.xml").getroot().iter("testcase")
    assert sum(1 for _ in cases) == criteria


@pytest.mark.parametrize("fault", sorted(n for n, f in FAULTS.items() if f.kind != "backup" and not f.shape), ids=str)
def test_fault_fails_its_criterion(fault, server, healthy_url, run_suite, reference_app, tmp_path: Path):
    spec = FAULTS[fault]
    if spec.kind in ("app", "receiver") and server.label != "embedded":
        pytest.skip("app and receiver faults do not depend on the database server: run on the embedded one")
    config = VARIANTS[spec.variant][1] if spec.variant else ""
    # The self-test databases are throwaway: the write criterion runs (rolled back) on every one.
    baseline = tmp_path / "baseline.json"
    if not spec.after_baseline:
        apply_fault(healthy_url, fault)
    capture_to_file(healthy_url, Settings(), baseline)
    if spec.after_baseline:
        apply_fault(healthy_url, fault)
    held = None
    if spec.kind == "session":
        held = connect(healthy_url, autocommit=False)
        held.execute(spec.sql.encode())  # the transaction stays open, idle
    deployment = reference_app(healthy_url, env=spec.env)
    args = ["--postdeploy-allow-writes", "--postdeploy-baseline", str(baseline), *spec.args]
    if config or spec.config:
        path = tmp_path / "fault.toml"
        # A variant adds objects outside the migrations: its runs compare with no release.
        path.write_text(server.backup_config + ("" if spec.variant else server.release_config) + config + spec.config)
        args += ["--postdeploy-config", str(path)]
    if held is not None:
        time.sleep(1.2)  # past the 1 s limit of the fault's config
    try:
        run = run_suite("-m", "post_deploy", *args, database_url=healthy_url, env=deployment.env | spec.env)
    finally:
        if held is not None:
            held.close()
    assert run.exit_code == 1, run.output
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: NO-GO - ")
    assert run.signoff["verdict"] == "NO-GO"
    assert run.outcomes("failed") == set(spec.criteria), run.output
    assert not run.outcomes("error"), run.output
    for criterion in run.signoff["criteria"]:
        if criterion["outcome"] == "failed":
            assert ": FAILED (wanted " in criterion["message"]
            assert criterion["observed"]
    assert "Traceback" not in run.output


def test_failures_carry_evidence_rows(server, healthy_url, run_suite):
    apply_fault(healthy_url, "ledger_tenant_mismatch")
    run = run_suite("-m", "tenancy", database_url=healthy_url)
    failed = [c for c in run.signoff["criteria"] if c["outcome"] == "failed"]
    assert [c["name"] for c in failed] == ["test_tenant_consistent_along_foreign_keys"]
    rows = failed[0]["evidence"]
    assert rows and rows[0]["table"] == "StockMovement"
    html = (run.folder / "sign-off.html").read_text()
    assert 'class="evidence"' in html and rows[0]["row"] in html


def test_empty_database_is_no_go_with_readable_failures(server, run_suite):
    url = server.create_database("empty")
    run = run_suite("-m", "post_deploy", database_url=url)
    assert run.exit_code == 1, run.output
    assert run.signoff["verdict"] == "NO-GO"
    assert not run.outcomes("error"), run.output
    # Only the check for broken objects can pass (an empty schema has none), the server's
    # health, and the backup criteria, which read the (healthy) backup folder, not the database.
    assert run.outcomes("passed") == {
        "test_no_invalid_index_or_unvalidated_constraint",
        "test_database_health",
        "test_latest_backup_age",
        "test_retention_coverage",
        "test_backups_automated",
        "test_final_backup_before_deploy",
    }
    assert "table _prisma_migrations not found" in run.output
    assert "Traceback" not in run.output


def test_marker_selection_runs_one_area(server, healthy_url, run_suite, reference_app):
    deployment = reference_app(healthy_url)
    run = run_suite("-m", "post_deploy and tenancy", database_url=healthy_url, env=deployment.env)
    assert run.exit_code == PARTIAL_EXIT, run.output
    assert {c["area"] for c in run.selected} == {"tenancy"}
    assert {c["area"] for c in run.signoff["criteria"] if c["outcome"] == "not selected"} == set(AREAS) - {"tenancy"}


def test_sessions_are_read_only(server, healthy_url):
    """Read-only with limits in every transaction, the implicit ones and the explicit ones, and
    nothing set for the session (a pooler in transaction mode would not keep it)."""
    from postdeploy.database.session import connect, snapshot
    from postdeploy.signoff.settings import DatabaseSettings

    query = ("SELECT name, setting FROM pg_settings WHERE name IN ('transaction_read_only', 'statement_timeout',"
             " 'lock_timeout', 'idle_in_transaction_session_timeout', 'application_name')")
    with connect(healthy_url, DatabaseSettings()) as conn:
        statement = dict(conn.execute(query).fetchall())
        with snapshot(conn):
            snapshotted = dict(conn.execute(query).fetchall())
        with conn.transaction():
            explicit = dict(conn.execute(query).fetchall())
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute('DELETE FROM "Organization"')
        session = conn.pgconn.parameter_status(b"default_transaction_read_only")
    assert session == b"off"  # the server's default: no start-up options
    for settings in (statement, snapshotted, explicit):
        assert settings["transaction_read_only"] == "on"
        assert settings["application_name"] == "postdeploy"
        assert all(int(settings[k]) > 0 for k in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"))


def test_json_and_html_tell_the_same_verdict(server, healthy_url, run_suite):
    apply_fault(healthy_url, "missing_trigger")
    run = run_suite("-m", "post_deploy", "--postdeploy-release", "v2.4.0", "--postdeploy-ticket", "CHG-1234", database_url=healthy_url)
    html = (run.folder / "sign-off.html").read_text()
    assert "SIGN-OFF: NO-GO" in html
    assert "v2.4.0" in html and "CHG-1234" in html
    assert json.loads((run.folder / "sign-off.json").read_text())["release"] == "v2.4.0"


def test_rls_variant_is_go_with_rls_checked(server, healthy_url, run_suite, reference_app, tmp_path: Path):
    config = tmp_path / "rls.toml"
    config.write_text(apply_variant(healthy_url, "rls"))
    deployment = reference_app(healthy_url)
    run = run_suite("-m", "tenancy", "--postdeploy-config", str(config), database_url=healthy_url, env=deployment.env)
    assert run.exit_code == PARTIAL_EXIT, run.output
    assert "test_row_level_security" in run.outcomes("passed")
    observed = next(c["observed"] for c in run.signoff["criteria"] if c["name"] == "test_row_level_security")
    assert "5 tables enabled and forced; 0 foreign rows seen as org_acme" in observed
