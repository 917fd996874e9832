"""The README's first command: the demo sign-off on the embedded reference deployment."""

from __future__ import annotations

import psutil
import pytest

CRITERIA = 11


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
    # Everything passes but the restore test, which runs only with --restore-test.
    assert run.outcomes("skipped") == {"test_restore_latest_backup"}
    assert len(run.outcomes("passed")) == len(run.signoff["criteria"]) - 1 >= CRITERIA
    assert run.signoff["server_version"].startswith("PostgreSQL")
    assert set(embedded_servers()) <= before, "the demo server is stopped at the end"
