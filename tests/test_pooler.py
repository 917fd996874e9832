"""The suite through Debian's PgBouncer, in transaction and in session mode, in front of each test
server: the same sign-off as direct, healthy and with faults, and no false balance mismatch
while an application writes through the same pool."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pooler import BINARY, PgBouncer
from test_balance import SETTINGS, Writer, model_for
from postdeploy.data.baseline import capture, capture_to_file
from postdeploy.database.session import connect
from postdeploy.ledger.scan import run
from postdeploy.ledger.shared import _sessions, shared_spec
from postdeploy.reference import FAULTS, apply_fault
from postdeploy.signoff.settings import DatabaseSettings, Settings
from postdeploy.tenancy.model import TenantModel
from postdeploy.signoff.verdict import PARTIAL_EXIT  # a run narrowed by -m/-k: a partial GO at best

MODES = ("transaction", "session")
# One fault of each kind the pooler could hide: a balance drift (the ledger pass's snapshot), a
# cross-tenant row (the same pass, tenancy) and a failed migration (plain catalog reads).
FAULTS_TRIED = ("balance_off_by_one", "ledger_tenant_mismatch", "failed_migration")

pytestmark = pytest.mark.skipif(not os.access(BINARY, os.X_OK),
                                reason="Debian's pgbouncer is not installed (.ci/run installs it: apt-get install pgbouncer)")


@pytest.fixture(scope="session")
def poolers(server) -> Iterator[dict[str, PgBouncer]]:
    started: dict[str, PgBouncer] = {}
    try:
        for mode in MODES:
            started[mode] = PgBouncer(server.admin_url, mode, users=(read_only_role(server),))
        yield started
    finally:
        for pooler in started.values():
            pooler.stop()


def read_only_role(server) -> str:
    return f"{server.prefix}ro"  # roles are the whole server's: one per test server


@pytest.fixture
def read_only(server) -> Iterator[str]:
    """A login role with only pg_read_all_data and pg_monitor, as docs/configuration.md advises."""
    role = sql.Identifier(read_only_role(server))
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("GRANT pg_read_all_data, pg_monitor TO {}").format(role))
    yield read_only_role(server)
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(role))


def sign_off(run_suite, url: str, deployment, baseline: Path, reports: str, *args: str):
    return run_suite("-m", "post_deploy", "--postdeploy-baseline", str(baseline), *args,
                     database_url=url, env=deployment.env, reports=reports)


def verdict_of(run) -> dict:
    """What a sign-off decided: its exit, verdict, every criterion's outcome and the failed ones' evidence."""
    criteria = run.signoff["criteria"]
    return {
        "exit": run.exit_code,
        "verdict": run.signoff["verdict"],
        "outcomes": {c["name"]: c["outcome"] for c in criteria},
        "evidence": {c["name"]: c["evidence"] for c in criteria if c["outcome"] == "failed"},
    }


@pytest.mark.parametrize("fault", [None, *FAULTS_TRIED], ids=lambda f: f or "healthy")
def test_pooled_signoff_matches_direct(fault, server, poolers, healthy_url, run_suite, reference_app, tmp_path):
    spec = FAULTS[fault] if fault else None
    baseline = tmp_path / "baseline.json"
    if spec and not spec.after_baseline:
        apply_fault(healthy_url, fault)
    capture_to_file(healthy_url, Settings(), baseline)
    if spec and spec.after_baseline:
        apply_fault(healthy_url, fault)
    deployment = reference_app(healthy_url)  # the application itself keeps its direct URL
    direct = sign_off(run_suite, healthy_url, deployment, baseline, "direct", "--postdeploy-allow-writes")
    expected = verdict_of(direct)
    if spec is None:
        assert direct.exit_code == 0 and expected["verdict"] == "GO", direct.output
    else:
        assert {n for n, o in expected["outcomes"].items() if o == "failed"} == set(spec.criteria), direct.output
    for mode, pooler in poolers.items():
        pooled = sign_off(run_suite, pooler.url_for(healthy_url), deployment, baseline, mode, "--postdeploy-allow-writes")
        assert "unsupported startup parameter" not in pooled.output
        assert verdict_of(pooled) == expected, f"{mode} mode:\n{pooled.output}"


def test_read_only_role_through_the_pool_signs_off_as_the_owner_does(server, poolers, read_only, healthy_url,
                                                                     run_suite, reference_app, tmp_path):
    """pg_read_all_data and pg_monitor are enough, through a pooler too (without --postdeploy-allow-writes,
    which a read-only role could not honour)."""
    baseline = tmp_path / "baseline.json"
    capture_to_file(healthy_url, Settings(), baseline)
    deployment = reference_app(healthy_url)
    expected = verdict_of(sign_off(run_suite, healthy_url, deployment, baseline, "direct"))
    for mode, pooler in poolers.items():
        pooled = sign_off(run_suite, pooler.url_for(healthy_url, read_only), deployment, baseline, mode)
        assert verdict_of(pooled) == expected, f"{mode} mode:\n{pooled.output}"


def test_one_session_for_the_pass_through_transaction_pooling(server, poolers, healthy_url):
    """Seen or set, transaction pooling keeps the ledger pass to one session; session pooling and
    a direct URL give it the sessions asked for."""
    settings = Settings()
    pooled = Settings(database=DatabaseSettings(pooled=True))
    cases = [(poolers["transaction"].url_for(healthy_url), settings, 1),
             (poolers["session"].url_for(healthy_url), settings, 2),
             (poolers["session"].url_for(healthy_url), pooled, 1),
             (healthy_url, settings, 2)]
    for url, given, wanted in cases:
        conns = _sessions(url, given)
        try:
            assert len(conns) == wanted, (url, given.database.pooled)
        finally:
            for conn in conns:
                conn.close()


def test_no_false_mismatch_with_a_writer_through_the_same_pool(server, poolers, healthy_url, run_suite, tmp_path):
    pooler = poolers["transaction"]
    url = pooler.url_for(healthy_url)
    baseline = tmp_path / "baseline.json"
    with connect(url, SETTINGS.database) as conn:
        catalog, model = model_for(conn)
        captured = capture(catalog, SETTINGS)
        captured.save(baseline)
        spec = shared_spec(catalog, SETTINGS, model, TenantModel(catalog, SETTINGS.tenancy), captured)
        with Writer(url) as writer, connect(url, SETTINGS.database) as second:
            passes = []
            for n in range(12):  # one session, and two sharing an exported snapshot through the pool
                passes.append(run([conn] if n % 2 else [conn, second], spec))
                time.sleep(0.03)
            config = tmp_path / "workers.toml"  # xdist workers even for this small ledger: the hand-off too
            config.write_text(server.backup_config + "\n[database]\nparallel_min_ledger_rows = 0\n")
            suite = run_suite("-m", "post_deploy", "-k", "reconcile or populated or consistent or rows_lost or history",
                              "-n", "2", "--postdeploy-baseline", str(baseline), "--postdeploy-config", str(config), database_url=url)
    assert writer.error is None, writer.error
    assert writer.inserted > 50
    assert [(p.balance.drifted, p.balance.missing, p.cross_tenant) for p in passes] == [(0, 0, [])] * len(passes)
    assert passes[-1].rows > passes[0].rows  # the reads saw the traffic grow
    assert suite.exit_code == PARTIAL_EXIT, suite.output
    assert suite.outcomes("passed") == {
        "test_balances_reconcile_with_ledger", "test_balances_populated", "test_tenant_consistent_along_foreign_keys",
        "test_no_rows_lost", "test_ledger_history_unchanged",
    }, suite.output


def test_statement_mode_is_one_line_exit_4(server, healthy_url, run_suite):
    """Statement pooling refuses every transaction block, and every read of the suite is one."""
    pooler = PgBouncer(server.admin_url, "statement")
    try:
        run = run_suite("-m", "post_deploy", database_url=pooler.url_for(healthy_url))
    finally:
        pooler.stop()
    assert run.exit_code == 4, run.output
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and "the pooler runs in statement mode" in lines[0], run.output


def test_init_through_the_pool_writes_what_direct_writes(server, poolers, healthy_url, tmp_path):
    """`postdeploy init` reads the catalog through a pooler in transaction mode as it does direct."""
    written = {}
    for label, url in (("direct", healthy_url), ("pooled", poolers["transaction"].url_for(healthy_url))):
        folder = tmp_path / label
        folder.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"DATABASE_URL": url}
        done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        written[label] = [line for line in (folder / "postdeploy.toml").read_text().splitlines()
                          if "postgresql://" not in line]
    assert written["pooled"] == written["direct"]
    assert any(line.startswith("ledger = ") for line in written["pooled"])
