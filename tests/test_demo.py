"""The README's first command: the demo sign-off on the embedded reference deployment."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

CRITERIA = 26
# Optional skips of the demo without options: delivery needs --postdeploy-send-test-alert, RLS the RLS
# variant, the restore test --postdeploy-restore-test.
OPTIONAL = {"test_alert_delivery", "test_row_level_security", "test_restore_latest_backup"}


def processes_under(folder: str) -> list[str]:
    """Processes whose command line names this folder: the demo's server and app live under it."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if folder in cmdline:
            found.append(cmdline[:120])
    return found


@pytest.fixture
def demo_tmp():
    """A short TMPDIR for the demo run (the server's socket path must stay short), so only
    its own processes are looked for: other runs on the machine may start servers too."""
    folder = tempfile.mkdtemp(prefix="pdd-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_demo_signoff_is_go_and_leaves_nothing_behind(workers, run_suite, demo_tmp):
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", *workers, env={"TMPDIR": demo_tmp})
    assert run.exit_code == 0, run.output
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - ")
    assert {p.name for p in run.folder.iterdir()} == {"sign-off.html", "sign-off.md", "junit.xml", "sign-off.json"}
    assert run.folder.name.startswith("demo-")
    assert len(run.outcomes("passed")) + len(OPTIONAL) == len(run.signoff["criteria"]) >= CRITERIA
    assert run.outcomes("skipped") == OPTIONAL
    assert run.signoff["server_version"].startswith("PostgreSQL")
    assert not processes_under(demo_tmp), "the demo server and app are stopped at the end"
    assert not list(Path(demo_tmp).glob("postdeploy-*")), "the demo's files are removed at the end"


def test_demo_sends_a_test_alert_and_shows_observed_values(run_suite, demo_tmp):
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-send-test-alert", env={"TMPDIR": demo_tmp})
    assert run.exit_code == 0, run.output
    observed = {c["name"]: c["observed"] for c in run.signoff["criteria"]}
    assert observed["test_alert_delivery"] == "Slack 200 ok, PagerDuty trigger 202 " + observed["test_alert_delivery"].split(
        "PagerDuty trigger 202 ", 1)[1]
    assert "PagerDuty resolve 202" in observed["test_alert_delivery"]
    assert observed["test_liveness_endpoint"].startswith("200 in ")
    assert "status pass" in observed["test_readiness_endpoint"]
    assert observed["test_deployed_version"].startswith("2024.03.01")
    assert not processes_under(demo_tmp), "the demo server and app are stopped at the end"
