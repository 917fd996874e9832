"""--postdeploy-target container and --postdeploy-restore-into container, on a real Docker engine.

The image is built on this machine, never pulled: `bash tests/docker/build-image.sh`
(.ci/run does it). Where no engine answers, these tests skip with the reason; the one
that checks the message without Docker always runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from postdeploy.scratch.container import LABEL, RUN_LABEL, default_image, docker_available

NO_DOCKER = docker_available()
needs_docker = pytest.mark.skipif(NO_DOCKER is not None, reason=f"no Docker engine: {NO_DOCKER}")


def containers_of(run: str) -> list[str]:
    """Containers started by the suite run labelled `run` (other tests may run containers too);
    none where no Docker engine answers (a run cannot have started one)."""
    if NO_DOCKER is not None:
        return []
    done = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={LABEL}", "--filter", f"label={RUN_LABEL}={run}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


@pytest.fixture
def run_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@needs_docker
def test_container_signoff_is_go_and_leaves_no_container(run_suite, run_id):
    run = run_suite(
        "-m", "post_deploy", "--postdeploy-target", "container", "-n", "2", "--postdeploy-restore-test", "--postdeploy-restore-into", "container",
        env={"POSTDEPLOY_RUN_ID": run_id},
    )
    assert run.exit_code == 0, run.output
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: GO - ")
    assert {p.name for p in run.folder.iterdir()} == {"sign-off.html", "sign-off.md", "junit.xml", "sign-off.json"}
    signoff = run.signoff
    assert signoff["target"].startswith("container (PostgreSQL in Docker) postgresql://postdeploy:***@127.0.0.1:")
    restore = next(c for c in signoff["criteria"] if c["name"] == "test_restore_latest_backup")
    assert restore["outcome"] == "passed", restore
    assert "restored into the container server" in restore["observed"]
    assert not containers_of(run_id), "the target and the scratch containers are removed"


@needs_docker
def test_missing_image_is_one_clear_message(run_suite):
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "container", "--postdeploy-image", "postdeploy/postgres:no-such-tag")
    assert run.exit_code == 4, run.output
    assert "Traceback" not in run.output
    assert "postdeploy/postgres:no-such-tag" in run.output and "tests/docker/build-image.sh" in run.output


@needs_docker
def test_container_never_ready_is_bounded_and_shows_its_log(run_suite, run_id, tmp_path):
    config = tmp_path / "slow.toml"
    config.write_text("[container]\nready_timeout_s = 0.5\n")
    started = time.monotonic()
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "container", "--postdeploy-config", str(config),
                    env={"POSTDEPLOY_RUN_ID": run_id})
    assert time.monotonic() - started < 60
    assert run.exit_code == 4, run.output
    assert "Traceback" not in run.output
    assert "did not accept connections within" in run.output
    assert "postdeploy-entrypoint" in run.output  # the container's last log lines
    assert not containers_of(run_id)


@needs_docker
def test_interrupted_run_removes_its_container(tmp_path, run_id):
    """Ctrl-C while the container target runs: the container goes too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")} | {"POSTDEPLOY_RUN_ID": run_id}
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "post_deploy", "--postdeploy-target", "container",
         f"--postdeploy-report-dir={tmp_path}"],
        cwd=os.path.dirname(os.path.dirname(__file__)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    # Polled tightly: the signal often lands while Docker creates and starts the container,
    # before testcontainers has returned its id (a container left behind until fixed).
    while not containers_of(run_id) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert containers_of(run_id), "the container target started a container"
    child.send_signal(signal.SIGINT)
    output = child.communicate(timeout=60)[0].decode(errors="replace")
    assert child.returncode == 2, output
    assert "interrupted by SIGINT during target start-up" in output and "SIGN-OFF: GO" not in output, output
    assert not containers_of(run_id), "no container left behind after Ctrl-C"


def test_without_docker_the_container_target_says_so(run_suite):
    started = time.monotonic()
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "container", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert time.monotonic() - started < 30, "fails at once"
    assert run.exit_code == 4, run.output
    assert "Traceback" not in run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and "Docker is not reachable" in errors[0] and "--postdeploy-target demo" in errors[0], run.output


@needs_docker
def test_default_image_is_the_locally_built_one():
    done = subprocess.run(["docker", "image", "inspect", default_image()], capture_output=True, text=True)
    assert done.returncode == 0, f"{default_image()} is missing: run bash tests/docker/build-image.sh"
