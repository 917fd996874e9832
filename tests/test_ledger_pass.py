"""The one ledger pass in whole runs: made once, recorded per criterion, read from a replica where
given, bounded by its own timeout, and visible on the terminal when slow."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from postdeploy.data.baseline import capture_to_file
from postdeploy.signoff.settings import Settings
from postdeploy.signoff.verdict import PARTIAL_EXIT  # a run narrowed by -m/-k: a partial GO at best

LEDGER_CRITERIA = {
    "test_balances_populated",
    "test_balances_reconcile_with_ledger",
    "test_tenant_consistent_along_foreign_keys",
    "test_no_rows_lost",
    "test_ledger_history_unchanged",
}
SELECT = ("-m", "post_deploy", "-k", "reconcile or populated or consistent or rows_lost or history")
# Workers even for the small self-test ledgers on this machine's server (else a run under -n
# stays in one process): one ledger session leaves a core of a 2-core machine to the workers.
WORKERS_ALWAYS = "\n[database]\nparallel_min_ledger_rows = 0\nledger_sessions = 1\n"


@contextmanager
def ledger_locked(url: str, until_waited_s: float | None) -> Iterator[None]:
    """Another session holds the ledger locked until a postdeploy session has waited that long for
    it (None: until the block ends): a slow pass, for real, whatever the run's start-up took."""
    locked, done = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(url) as conn, psycopg.connect(url, autocommit=True) as watch:
            conn.execute('LOCK TABLE "StockMovement" IN ACCESS EXCLUSIVE MODE')
            locked.set()
            deadline = time.monotonic() + 120
            while not done.is_set() and time.monotonic() < deadline:
                waited = watch.execute(
                    "SELECT max(extract(epoch FROM now() - state_change)) FROM pg_stat_activity"
                    " WHERE application_name = 'postdeploy' AND wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()[0]
                if until_waited_s is not None and waited is not None and waited >= until_waited_s:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=30)


@pytest.fixture
def baseline(healthy_url, tmp_path):
    path = tmp_path / "baseline.json"
    capture_to_file(healthy_url, Settings(), path)
    return str(path)


def ledger_records(run) -> dict[str, dict]:
    return {c["name"]: c for c in run.signoff["criteria"] if c["name"] in LEDGER_CRITERIA}


@pytest.mark.parametrize("workers", ["0", "2"])
def test_one_pass_per_run_recorded_on_each_criterion(server, healthy_url, baseline, run_suite, workers, tmp_path):
    config = tmp_path / "workers.toml"
    config.write_text(server.backup_config + WORKERS_ALWAYS)
    run = run_suite(*SELECT, "--postdeploy-baseline", baseline, "-n", workers, "--postdeploy-config", str(config), database_url=healthy_url)
    assert run.exit_code == PARTIAL_EXIT, run.output
    assert ("created: 2/2 workers" in run.output) == (workers == "2"), run.output
    records = ledger_records(run)
    assert set(records) == LEDGER_CRITERIA
    passes = {(r["shared_pass"]["seconds"], r["shared_pass"]["source"]) for r in records.values()}
    assert len(passes) == 1, passes  # the same pass, made once, under -n too
    (seconds, source), = passes
    assert source == "primary" and seconds > 0
    junit = (run.folder / "junit.xml").read_text()
    assert junit.count('name="shared_pass"') == len(LEDGER_CRITERIA)


def test_replica_on_the_same_server_gives_the_same_results(server, healthy_url, baseline, run_suite):
    primary = run_suite(*SELECT, "--postdeploy-baseline", baseline, database_url=healthy_url)
    replica = run_suite(*SELECT, "--postdeploy-baseline", baseline, database_url=healthy_url, reports="replica",
                        env={"DATABASE_REPLICA_URL": healthy_url})
    assert primary.exit_code == replica.exit_code == PARTIAL_EXIT, replica.output
    a, b = ledger_records(primary), ledger_records(replica)
    for name in LEDGER_CRITERIA:
        assert (a[name]["outcome"], a[name]["evidence"]) == (b[name]["outcome"], b[name]["evidence"])
        # the observed figures, without the pass's own time
        assert a[name]["observed"].split(" (one REPEATABLE")[0] == b[name]["observed"].split(" (one REPEATABLE")[0]
        assert b[name]["shared_pass"]["source"].startswith("replica postgresql://")
        assert b[name]["shared_pass"]["replica_lag_s"] == 0.0


def test_replica_faults_are_seen_there_too(server, healthy_url, baseline, run_suite):
    from postdeploy.reference import apply_fault

    apply_fault(healthy_url, "balance_off_by_one")
    run = run_suite(*SELECT, "--postdeploy-baseline", baseline, database_url=healthy_url, env={"DATABASE_REPLICA_URL": healthy_url})
    assert run.outcomes("failed") == {"test_balances_reconcile_with_ledger"}, run.output


def test_unreachable_replica_fails_the_ledger_criteria_in_one_line(server, healthy_url, baseline, run_suite):
    unreachable = "postgresql://postdeploy:secret-pw@127.0.0.1:9/inventory"
    run = run_suite(*SELECT, "-k", "not_applicable or tenant_columns or reconcile or populated or consistent"
                    " or rows_lost or history", "--postdeploy-baseline", baseline, database_url=healthy_url,
                    env={"DATABASE_REPLICA_URL": unreachable})
    assert run.exit_code == 1
    assert run.outcomes("failed") == LEDGER_CRITERIA, run.output
    assert "test_tenant_columns_not_null" in run.outcomes("passed")  # the catalog criteria read the primary
    for record in ledger_records(run).values():
        assert record["observed"].startswith("cannot connect to postgresql://postdeploy:***@127.0.0.1:9/inventory")
        assert "Check DATABASE_REPLICA_URL." in record["observed"]
        assert "\n" not in record["observed"]
    assert "secret-pw" not in run.output and "Traceback" not in run.output


def test_replica_lagging_over_the_limit_fails_the_ledger_criteria(server, healthy_url, baseline, run_suite, tmp_path):
    config = tmp_path / "lag.toml"
    config.write_text(server.backup_config + "\n[database]\nmax_replica_lag_s = -1.0\n")  # a limit no replica meets
    run = run_suite(*SELECT, "--postdeploy-baseline", baseline, "--postdeploy-config", str(config), database_url=healthy_url,
                    env={"DATABASE_REPLICA_URL": healthy_url})
    assert run.outcomes("failed") == LEDGER_CRITERIA, run.output
    message = ledger_records(run)["test_balances_reconcile_with_ledger"]["message"]
    assert "wanted replica lag <= -1 s (database.max_replica_lag_s)" in message and "lags 0.0 s" in message


@pytest.mark.parametrize("workers", ["0", "2"])
def test_slow_pass_prints_a_progress_line(server, healthy_url, baseline, run_suite, tmp_path, workers):
    config = tmp_path / "slow.toml"
    config.write_text(server.backup_config + WORKERS_ALWAYS + "lock_timeout_ms = 30000\n")
    with ledger_locked(healthy_url, 3.0):
        run = run_suite(*SELECT, "--postdeploy-baseline", baseline, "--postdeploy-config", str(config), "-n", workers,
                        database_url=healthy_url)
    assert run.exit_code == PARTIAL_EXIT, run.output
    lines = [line for line in run.output.splitlines() if line.startswith("ledger pass: ")]
    assert lines, run.output
    assert "StockMovement on the primary" in lines[0] and "rows (catalog estimate)" in lines[0]
    assert lines[0].endswith("s elapsed")


def test_ledger_statement_timeout_fails_the_ledger_criteria(server, healthy_url, baseline, run_suite, tmp_path):
    config = tmp_path / "timeout.toml"
    config.write_text(server.backup_config + "\n[database]\nlock_timeout_ms = 30000\nledger_statement_timeout_ms = 500\n")
    with ledger_locked(healthy_url, None):
        run = run_suite(*SELECT, "--postdeploy-baseline", baseline, "--postdeploy-config", str(config), database_url=healthy_url)
    assert run.outcomes("failed") == LEDGER_CRITERIA, run.output
    observed = ledger_records(run)["test_no_rows_lost"]["observed"]
    assert observed == "the ledger pass over StockMovement on the primary was cancelled after 500 ms"
    assert "database.ledger_statement_timeout_ms" in ledger_records(run)["test_no_rows_lost"]["wanted"]


def test_small_ledger_under_n_stays_in_one_process(server, healthy_url, baseline, run_suite):
    run = run_suite(*SELECT, "--postdeploy-baseline", baseline, "-n", "2", database_url=healthy_url)
    assert run.exit_code == PARTIAL_EXIT, run.output
    assert "created: 2/2 workers" not in run.output
    assert "one process: the ledger holds ~" in run.output and "database.parallel_min_ledger_rows (5,000,000)" in run.output


@pytest.mark.skipif((os.cpu_count() or 1) > 8, reason="more cores than the 8 ledger sessions take")
def test_local_database_with_cores_taken_by_the_pass_stays_in_one_process(server, healthy_url, baseline, run_suite, tmp_path):
    config = tmp_path / "cores.toml"
    config.write_text(server.backup_config + "\n[database]\nparallel_min_ledger_rows = 0\nledger_sessions = 8\n")
    run = run_suite(*SELECT, "--postdeploy-baseline", baseline, "--postdeploy-config", str(config), "-n", "2", database_url=healthy_url)
    assert run.exit_code == PARTIAL_EXIT, run.output
    assert "created: 2/2 workers" not in run.output
    assert f"one process: the database runs on this machine, whose {os.cpu_count()} cores" in run.output
    assert run.outcomes("passed") == LEDGER_CRITERIA, run.output
