"""The README's first command: the demo sign-off on the embedded reference deployment."""

from __future__ import annotations

import psutil
import pytest

CRITERIA = 26
# Optional skips of the demo without options: delivery needs --send-test-alert, RLS the RLS variant.
OPTIONAL = {"test_alert_delivery", "test_row_level_security"}


def embedded_servers() -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and "postdeploy-pg-" in " ".join(p.info["cmdline"] or [])
    ]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_demo_signoff_is_go_and_leaves_nothing_behind(workers, run_suite):
    before = set(embedded_servers())
    run = run_suite("-m", "post_deploy", "--target", "demo", *workers)
    assert run.exit_code == 0, run.output
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - ")
    assert {p.name for p in run.folder.iterdir()} == {"sign-off.html", "junit.xml", "sign-off.json"}
    assert run.folder.name.startswith("demo-")
    assert len(run.outcomes("passed")) + len(OPTIONAL) == len(run.signoff["criteria"]) >= CRITERIA
    assert run.outcomes("skipped") == OPTIONAL
    assert run.signoff["server_version"].startswith("PostgreSQL")
    assert set(embedded_servers()) <= before, "the demo server is stopped at the end"


def reference_apps() -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "fixtures.reference.app" in " ".join(p.info["cmdline"] or [])
    ]


def test_demo_sends_a_test_alert_and_shows_observed_values(run_suite):
    before = set(reference_apps())
    run = run_suite("-m", "post_deploy", "--target", "demo", "--send-test-alert")
    assert run.exit_code == 0, run.output
    observed = {c["name"]: c["observed"] for c in run.signoff["criteria"]}
    assert observed["test_alert_delivery"] == "Slack 200 ok, PagerDuty trigger 202 " + observed["test_alert_delivery"].split(
        "PagerDuty trigger 202 ", 1)[1]
    assert "PagerDuty resolve 202" in observed["test_alert_delivery"]
    assert observed["test_liveness_endpoint"].startswith("200 in ")
    assert "status pass" in observed["test_readiness_endpoint"]
    assert observed["test_deployed_version"].startswith("2024.03.01")
    assert set(reference_apps()) <= before, "the demo app is stopped at the end"
