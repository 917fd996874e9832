"""Capabilities declared absent on the reference deployment: the criteria about them end not
applicable, counted apart, carrying the setting; everything else still runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from postdeploy.data.baseline import capture_to_file
from postdeploy.signoff.settings import Settings
from conftest import EMBEDDED_ONLY

DECLARED = '[balance]\ntrigger = ""\n[monitoring]\nreconciliation_table = ""\n[app]\nenabled = false\n[alerting]\nenabled = false\n'


@EMBEDDED_ONLY
def test_declared_absent_is_not_applicable_and_go(server, healthy_url, run_suite, tmp_path: Path):
    config = tmp_path / "declared.toml"
    config.write_text(server.backup_config + DECLARED)
    baseline = tmp_path / "baseline.json"
    capture_to_file(healthy_url, Settings(), baseline)
    run = run_suite("-m", "post_deploy", "--postdeploy-allow-writes", "--postdeploy-config", str(config), "--postdeploy-baseline", str(baseline),
                    database_url=healthy_url)
    assert run.exit_code == 0, run.output
    last = run.output.rstrip().splitlines()[-1]
    outcomes = {c["name"]: c for c in run.signoff["criteria"]}
    na = {n for n, c in outcomes.items() if c["outcome"] == "not applicable"}
    assert {"test_balance_table_and_trigger", "test_trigger_keeps_balances_current", "test_job_heartbeats",
            "test_liveness_endpoint", "test_login", "test_cross_org_list_clean",
            "test_no_critical_errors_in_logs", "test_alert_routes_configured", "test_alert_delivery"} <= na
    assert last.startswith("SIGN-OFF: GO - ") and f"{len(na)} not applicable" in last, last
    # Balances kept by the application: the reconciliation still runs, and passes.
    assert outcomes["test_balances_reconcile_with_ledger"]["outcome"] == "passed"
    assert outcomes["test_job_heartbeats"]["observed"] == (
        'not applicable: a scheduled job table (reconciliation, backup monitoring) ([monitoring] reconciliation_table = "")'
    )
    # JUnit: a skipped case carrying the setting.
    cases = {c.get("name"): c for c in ET.parse(run.folder / "junit.xml").getroot().iter("testcase")}
    trigger = cases["test_balance_table_and_trigger"]
    assert trigger.find("skipped") is not None
    properties = {p.get("name"): p.get("value") for p in trigger.iter("property")}
    assert properties["not_applicable"] == '[balance] trigger = ""'
    assert "()" not in run.output and " on : " not in run.output  # no empty name formatted


@EMBEDDED_ONLY
def test_balance_area_declared_absent(server, healthy_url, run_suite, tmp_path: Path):
    config = tmp_path / "nobalance.toml"
    config.write_text('[balance]\nenabled = false\n')
    run = run_suite("-m", "balance", "--postdeploy-allow-writes", "--postdeploy-config", str(config), database_url=healthy_url)
    # Nothing but not applicable: the line is, the run is never a GO over nothing checked.
    assert run.exit_code == 1 and run.output.rstrip().endswith("no criterion passed"), run.output
    ran = [c for c in run.signoff["criteria"] if c["outcome"] != "not selected"]
    assert {c["outcome"] for c in ran} == {"not applicable"}, run.output
    assert all("[balance] enabled = false" in c["observed"] for c in ran)
    balance = next(line for line in run.signoff["success_criteria"] if line["title"] == "Balance queries working")
    assert balance["status"] == "not applicable" and balance["declared"] == ["[balance] enabled = false"]
