"""APP_URL that gives no HTTP answer, and secrets in the application's answers and logs."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from postdeploy.reference import DEMO_PASSWORD
from conftest import EMBEDDED_ONLY

HTTP_CRITERIA = {
    "test_liveness_endpoint",
    "test_readiness_endpoint",
    "test_deployed_version",
    "test_login",
    "test_protected_endpoints_refuse_bad_tokens",
    "test_inventory_queries",
    "test_cross_org_item_refused",
    "test_cross_org_list_clean",
    "test_cross_org_balances_refused",
    "test_explicit_org_override_refused",
}
DATABASE_CRITERIA = {"test_no_failed_migration", "test_tenant_consistent_along_foreign_keys", "test_database_health"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for s in held:
        s.close()
    server.close()


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """Listens but never accepts, its queue full: new connections get no answer (unreachable)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    yield port
    for c in fillers:
        c.close()
    server.close()


@EMBEDDED_ONLY  # the application's failures do not depend on the database server
@pytest.mark.parametrize("mode", ["unreachable", "refused", "timeout", "tls"])
def test_app_url_without_answer_fails_each_http_criterion_in_one_line(
    mode, request, embedded, server, healthy_url, reference_app, run_suite, tmp_path: Path
):
    deployment = reference_app(healthy_url)
    if mode == "refused":
        url, cause = f"http://127.0.0.1:{_closed_port()}", "connection refused"
    elif mode == "timeout":
        url, cause = f"http://127.0.0.1:{request.getfixturevalue('silent_server')}", "timed out"
    elif mode == "unreachable":
        url, cause = f"http://127.0.0.1:{request.getfixturevalue('full_backlog')}", "unreachable"
    else:  # the reference app speaks plain HTTP; the URL says https
        url, cause = deployment.app.url.replace("http://", "https://"), "TLS error"
    config = tmp_path / "fast.toml"
    config.write_text("[app]\ntimeout_s = 1.0\n")
    run = run_suite("-m", "post_deploy", "--postdeploy-config", str(config), database_url=healthy_url,
                    env=deployment.env | {"APP_URL": url})
    assert run.exit_code == 1, run.output
    assert "Traceback" not in run.output
    assert run.outcomes("failed") == HTTP_CRITERIA, run.output
    assert not run.outcomes("error"), run.output
    assert DATABASE_CRITERIA <= run.outcomes("passed")
    for criterion in run.signoff["criteria"]:
        if criterion["outcome"] == "failed":
            message = criterion["message"]
            assert "\n" not in message.strip() and url in message and cause in message, message
            assert criterion["observed"] == message


def test_no_app_url_is_a_blocking_skip_and_database_criteria_still_run(server, healthy_url, run_suite):
    run = run_suite("-m", "post_deploy", database_url=healthy_url)
    assert run.exit_code == 1 and run.signoff["verdict"] == "NO-GO", run.output
    skipped = {c["name"]: c["message"] for c in run.signoff["criteria"] if c["outcome"] == "skipped"}
    assert HTTP_CRITERIA <= set(skipped)
    assert all("APP_URL is not set" in skipped[name] for name in HTTP_CRITERIA)
    assert not run.outcomes("failed")
    assert DATABASE_CRITERIA <= run.outcomes("passed")
    assert "required check" in run.output.rstrip().splitlines()[-1]


@EMBEDDED_ONLY
def test_tokens_passwords_and_cookies_appear_in_no_output(server, healthy_url, reference_app, run_suite):
    # Errors in the log quote a bearer token and a cookie; the login answers carry tokens.
    deployment = reference_app(healthy_url, env={"POSTDEPLOY_APP_FAULT": "log_errors"})
    run = run_suite("-m", "post_deploy", "--postdeploy-send-test-alert", database_url=healthy_url, env=deployment.env)
    assert run.outcomes("failed") == {"test_no_critical_errors_in_logs"}, run.output
    log = deployment.app.log_file.read_text()
    tokens = set(re.findall(r"Bearer (\S+)", log))
    cookies = set(re.findall(r"session=(\w+)", log))
    assert tokens and cookies, log
    secrets = tokens | cookies | {DEMO_PASSWORD, deployment.env["PAGERDUTY_ROUTING_KEY"]}
    secrets.add(deployment.env["SLACK_WEBHOOK_URL"].rsplit("/", 1)[-1])
    evidence = next(c for c in run.signoff["criteria"] if c["name"] == "test_no_critical_errors_in_logs")["evidence"]
    assert any("Authorization: Bearer ***" in row["line"] for row in evidence), evidence
    for text in [run.output, *(p.read_text() for p in run.folder.iterdir())]:
        for secret in secrets:
            assert secret not in text
