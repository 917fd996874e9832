"""Interrupts: Ctrl-C (SIGINT to the process group, as a terminal sends it) or SIGTERM (to the
run alone, as a supervisor sends it) at target start-up, during a criterion and at teardown.

Each stops the run with exit status 2, says "interrupted", writes no GO anywhere and leaves
no server, app or container behind. A criterion and the teardown are held by a small plugin
the run loads (`-p pause_at`), so the signal lands in that phase every time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from postdeploy.signoff.interrupts import uninterrupted
from test_container import NO_DOCKER, containers_of
from test_demo import processes_under
from conftest import suite_environ

ROOT = Path(__file__).resolve().parent.parent
PAUSE_PLUGIN = '''
import os, pathlib, time
import pytest

PHASE, MARK = os.environ["PAUSE_AT"], pathlib.Path(os.environ["PAUSE_MARK"])


def _pause():
    MARK.write_text(PHASE)
    time.sleep(120)  # the test's signal ends this


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    if PHASE == "a criterion":
        _pause()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    if PHASE == "teardown" and nextitem is None:
        _pause()
'''
CASES = [  # target, phase, signal, xdist workers
    ("demo", "target start-up", signal.SIGINT, 0),
    ("demo", "a criterion", signal.SIGTERM, 0),
    ("demo", "a criterion", signal.SIGINT, 2),
    ("demo", "teardown", signal.SIGINT, 0),
    ("container", "target start-up", signal.SIGTERM, 0),
    ("container", "a criterion", signal.SIGINT, 0),
    ("container", "teardown", signal.SIGTERM, 0),
]
GO_WORD = re.compile(r"(?<![\w-])GO(?![\w-])")  # GO, not NO-GO
PHASE_SAID = {"target start-up": "target start-up", "a criterion": "the criteria", "teardown": "teardown"}


def _started(target: str, run_id: str, tmp: Path) -> bool:
    """The run's server (demo) or container exists: its start-up is under way."""
    if target == "container":
        return bool(containers_of(run_id))
    return any("postgres" in p for p in processes_under(str(tmp)))


def interrupt_run(target: str, phase: str, signum: int, tmp: Path, workers: int = 0) -> tuple[int, str, str]:
    """Run the sign-off, signal it in `phase`; (exit status, output, run id)."""
    run_id = f"int-{uuid.uuid4().hex[:10]}"
    plugins = tmp / "plugins"
    plugins.mkdir()
    (plugins / "pause_at.py").write_text(PAUSE_PLUGIN)
    mark = tmp / "paused"
    env = suite_environ()
    env |= {"TMPDIR": str(tmp), "POSTDEPLOY_RUN_ID": run_id, "PAUSE_AT": phase, "PAUSE_MARK": str(mark),
            "PYTHONPATH": str(plugins)}
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
         "-p", "no:cacheprovider", "-p", "pause_at", "--postdeploy-report-dir", str(tmp / "reports"),
         str(ROOT / "verifications"), "-m", "post_deploy", "--postdeploy-target", target,
         *(["-n", str(workers)] if workers else [])],
        cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        ready = (lambda: _started(target, run_id, tmp)) if phase == "target start-up" else mark.exists
        while not ready() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, f"the run ended before {phase}:\n{child.communicate()[0].decode()}"
        assert ready(), f"{phase} not reached in time"
        if signum == signal.SIGINT:
            os.killpg(child.pid, signum)  # Ctrl-C: the terminal signals the whole process group
        else:
            child.send_signal(signum)
        output = child.communicate(timeout=120)[0].decode(errors="replace")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return child.returncode, output, run_id


@pytest.mark.parametrize(("target", "phase", "signum", "workers"), CASES,
                         ids=[f"{t}-{p.replace(' ', '-')}-{signal.Signals(s).name}" + (f"-n{n}" if n else "")
                              for t, p, s, n in CASES])
def test_an_interrupted_run_stops_cleanly(target, phase, signum, workers, short_tmp):
    run_tmp = Path(short_tmp)
    if target == "container" and NO_DOCKER:
        pytest.skip(f"no Docker engine: {NO_DOCKER}")
    code, output, run_id = interrupt_run(target, phase, signum, run_tmp, workers)
    assert code == 2, output
    assert f"interrupted by {signal.Signals(signum).name} during {PHASE_SAID[phase]}" in output, output
    assert "SIGN-OFF: GO" not in output, output
    assert "Traceback" not in output, output
    for written in (run_tmp / "reports").glob("*/sign-off.*"):  # JSON, HTML, Markdown
        text = written.read_text()
        assert not GO_WORD.search(text), f"{written.name}: {GO_WORD.search(text)}"  # not the verdict, not a line
        assert "interrupted by" in text, written
    assert not processes_under(str(run_tmp)), "no server or app left behind"
    if target == "container":
        assert not containers_of(run_id), "no container left behind"


def test_clean_up_finishes_before_a_signal_is_delivered():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with uninterrupted():
            signal.raise_signal(signal.SIGINT)
            done.append("the clean-up went on")
    assert done == ["the clean-up went on"]
