"""--target rehearsal: the release's migrations tried on a restored backup, never on the target."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from postdeploy import reference
from postdeploy.reference.backups import demo_backups
from postdeploy.reference.release_faults import RELEASES
from tests.conftest import ROOT
from tests.test_container import containers_of, needs_docker
from tests.test_demo import processes_under

# The reference deployment as it was before its last migration (add_balance_table).
BEFORE_LAST_MIGRATION = """
DROP TRIGGER "stock_movement_balance" ON "StockMovement";
DROP FUNCTION "apply_stock_movement"();
DROP TABLE "InventoryBalance";
DELETE FROM _prisma_migrations WHERE migration_name = '20240301000000_add_balance_table';
"""
LAST_MIGRATION = "20240301000000_add_balance_table"
UNIQUE_NAME_MIGRATION = "20240401000000_unique_item_name"


def fingerprint(url: str) -> list[tuple]:
    """Tables, their row counts and the migration table: what a write to the target would change."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1")]
        counts = [(t, conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables]
        rows = conn.execute(
            "SELECT migration_name, checksum, finished_at, logs FROM _prisma_migrations ORDER BY 1").fetchall()
    return [*counts, *rows]


def rehearsal_config(tmp_path: Path, backups: Path, folder: Path, after_migrate: list[str]) -> Path:
    steps = ", ".join(json.dumps(s) for s in after_migrate)  # a TOML string is a JSON string here
    path = tmp_path / "rehearsal.toml"
    path.write_text(
        f'[backup]\nprovider = "directory"\n\n[backup.directory]\npath = "{backups}"\n\n'
        f'[migration]\nfolder = "{folder}"\nextra_sql = ["{LAST_MIGRATION}/trigger.sql"]\n\n'
        f"[rehearsal]\nafter_migrate = [{steps}]\n\n"
        # No application runs in front of the rehearsal's copy: its HTTP and log criteria skip.
        '[signoff]\nrequired_areas = ["migration", "balance", "backup", "data"]\n'
    )
    return path


@pytest.fixture(autouse=True)
def embedded_only(server):
    if server.label != "embedded":
        # This machine's PostgreSQL 15 dumps a column option (pg_attver) that PostgreSQL 18, where
        # the rehearsal restores, refuses: its dumps cannot be rehearsed here.
        pytest.skip("rehearsal self-tests restore dumps of the embedded server only")


def assert_nothing_left(folder: str) -> None:
    assert not processes_under(folder), "the throwaway servers are stopped"
    assert not list(Path(folder).glob("postdeploy-*")), "their files are removed"


@pytest.mark.parametrize("into", ["embedded", pytest.param("container", marks=needs_docker)])
def test_rehearsal_applies_the_last_migration_and_signs_off(into, server, healthy_url, run_suite, tmp_path, short_tmp):
    with psycopg.connect(healthy_url, autocommit=True) as conn:
        conn.execute(BEFORE_LAST_MIGRATION)
    demo_backups(healthy_url, tmp_path / "backups")
    before = fingerprint(healthy_url)
    trigger = reference.TRIGGER_SQL_PATH
    config = rehearsal_config(tmp_path, tmp_path / "backups", reference.MIGRATIONS_DIR,
                              [str(trigger), str(reference.BACKFILL_SQL_PATH)])
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    run = run_suite("-m", "post_deploy", "--target", "rehearsal", "--restore-into", into, "--config", str(config),
                    database_url=healthy_url, env={"TMPDIR": short_tmp, "POSTDEPLOY_RUN_ID": run_id})
    assert run.exit_code == 0, run.output
    assert run.signoff["verdict"] == "GO"
    assert not run.outcomes("failed") and not run.outcomes("error"), run.output
    applied = next(c for c in run.signoff["criteria"] if c["name"] == "test_applied_migrations_match_release")
    assert applied["outcome"] == "passed"
    observed = applied["observed"]
    assert " (PostgreSQL 18." in observed and ", the target runs 18." in observed  # the one thing read of the target
    assert f"{LAST_MIGRATION}: " in observed and " s, AccessExclusiveLock on InventoryBalance" in observed
    assert applied["evidence"][0]["migration"] == LAST_MIGRATION
    assert fingerprint(healthy_url) == before, "the target database is unchanged"
    assert_nothing_left(short_tmp)
    assert not containers_of(run_id), "the scratch container is removed"


def test_release_that_cannot_apply_is_no_go(server, healthy_url, run_suite, tmp_path, short_tmp):
    demo_backups(healthy_url, tmp_path / "backups")
    before = fingerprint(healthy_url)
    config = rehearsal_config(tmp_path, tmp_path / "backups", RELEASES / "next_unique_item_name", [])
    # Under xdist: the workers read the rehearsal's record from the target the controller hands them.
    run = run_suite("-m", "post_deploy", "--target", "rehearsal", "-n", "2", "--config", str(config),
                    database_url=healthy_url, env={"TMPDIR": short_tmp})
    assert run.exit_code == 1, run.output
    assert run.signoff["verdict"] == "NO-GO"
    assert {"test_applied_migrations_match_release", "test_no_failed_migration"} <= run.outcomes("failed")
    applied = next(c for c in run.signoff["criteria"] if c["name"] == "test_applied_migrations_match_release")
    assert UNIQUE_NAME_MIGRATION in applied["message"]
    assert "could not create unique index" in applied["message"] and "23505" in applied["message"]
    assert fingerprint(healthy_url) == before, "the target database is unchanged"
    assert_nothing_left(short_tmp)


def test_ctrl_c_during_the_rehearsal_leaves_no_server(server, healthy_url, tmp_path, short_tmp):
    demo_backups(healthy_url, tmp_path / "backups")
    started = tmp_path / "step-started"
    script = tmp_path / "slow_step.py"
    script.write_text(f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(120)\n")
    step = f"{sys.executable} {script}"
    config = rehearsal_config(tmp_path, tmp_path / "backups", reference.MIGRATIONS_DIR, [step])
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
         "-p", "no:cacheprovider", "--report-dir", str(tmp_path / "reports"), str(ROOT / "verifications"),
         "-m", "post_deploy", "--target", "rehearsal", "--config", str(config)],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "TMPDIR": short_tmp,
                           "DATABASE_URL": healthy_url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.exists(), child.stdout.read() if child.poll() is not None else "the step never started"
        assert processes_under(short_tmp), "the throwaway server runs during the rehearsal"
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    assert "Traceback" not in output
    assert_nothing_left(short_tmp)


def test_rehearsal_needs_a_folder_and_a_dump_it_can_restore(server, healthy_url, run_suite, tmp_path, short_tmp):
    from postdeploy.reference.backups import backup_source

    config = tmp_path / "no-folder.toml"
    config.write_text(server.backup_config)
    run = run_suite("-m", "post_deploy", "--target", "rehearsal", "--config", str(config), database_url=healthy_url)
    assert run.exit_code == 4 and "--target rehearsal needs the release's migrations" in run.output, run.output
    with backup_source("pgbackrest_ok", None, tmp_path / "pgbackrest") as (backup, _):
        config.write_text(backup + server.release_config)
        run = run_suite("-m", "post_deploy", "--target", "rehearsal", "--config", str(config),
                        database_url=healthy_url, env={"TMPDIR": short_tmp})
    assert run.exit_code == 4, run.output
    assert "the pgbackrest provider's backups cannot be restored here: pgBackRest backups are physical" in run.output
    assert "Traceback" not in run.output
    assert_nothing_left(short_tmp)
