"""--postdeploy-target rehearsal: the release's migrations tried on a restored backup, never on the target,
and the way back: rollback steps, the rolled-back copy signed off, the round trip."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest

from postdeploy import reference
from postdeploy.reference.backups import demo_backups
from postdeploy.reference.release_faults import RELEASES
from postdeploy.signoff.checklist import ROLLBACK_AREAS
from tests.conftest import EMBEDDED_ONLY, MACHINE_ONLY, ROOT
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
# The criteria that ask the running application over HTTP (they use the `app` fixture).
APP_CRITERIA = {"test_cross_org_item_refused", "test_cross_org_list_clean", "test_cross_org_balances_refused",
                "test_explicit_org_override_refused", "test_liveness_endpoint", "test_login"}
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


def rehearsal_config(tmp_path: Path, backups: Path, folder: Path, after_migrate: list[str], *,
                     rollback: tuple[str, ...] = (), rehearsal: str = "", backup: str = "") -> Path:
    """`rehearsal` and `backup`: more lines for those sections."""
    def strings(values):
        return ", ".join(json.dumps(str(s)) for s in values)  # a TOML string is a JSON string here

    path = tmp_path / "rehearsal.toml"
    path.write_text(
        f'[backup]\nprovider = "directory"\n{backup}\n\n[backup.directory]\npath = "{backups}"\n\n'
        f'[migration]\nfolder = "{folder}"\nextra_sql = ["{LAST_MIGRATION}/trigger.sql"]\n\n'
        f"[rehearsal]\nafter_migrate = [{strings(after_migrate)}]\nrollback = [{strings(rollback)}]\n{rehearsal}\n\n"
        # No application runs in front of the rehearsal's copy: no HTTP, no log, no alert route.
        "[app]\nenabled = false\n\n[logs]\nenabled = false\n\n[alerting]\nenabled = false\n"
    )
    return path


@pytest.fixture
def dump_bin(server) -> Path | None:
    """The pg_dump that dumps this server as its operators would: the embedded wheel's for the
    embedded server; for the machine's, its own major's. (The wheel's pg_dump 18 writes the
    machine's PostgreSQL 15 column option as `ALTER TABLE ... ALTER COLUMN ... SET (pg_attver=...)`,
    which PostgreSQL 18 refuses on restore: `unrecognized parameter "pg_attver"`.)"""
    if server.label == "embedded":
        return None
    with psycopg.connect(server.admin_url) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    folder = Path(f"/usr/lib/postgresql/{major}/bin")
    if not (folder / "pg_dump").is_file():
        pytest.skip(f"no pg_dump {major} in {folder}: the embedded wheel's pg_dump 18 dumps this server's column"
                    ' option as ALTER COLUMN ... SET (pg_attver=...), which PostgreSQL 18 refuses'
                    ' (unrecognized parameter "pg_attver")')
    return folder


def server_major(url: str) -> str:
    with psycopg.connect(url) as conn:
        return str(int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000)


def assert_nothing_left(folder: str) -> None:
    assert not processes_under(folder), "the throwaway servers are stopped"
    assert not list(Path(folder).glob("postdeploy-*")), "their files are removed"


@pytest.mark.parametrize("into", ["embedded", pytest.param("container", marks=needs_docker)])
def test_rehearsal_applies_the_last_migration_and_signs_off(into, server, healthy_url, run_suite, tmp_path, short_tmp,
                                                            dump_bin):
    with psycopg.connect(healthy_url, autocommit=True) as conn:
        conn.execute(BEFORE_LAST_MIGRATION)
    demo_backups(healthy_url, tmp_path / "backups", bin_dir=dump_bin)
    before = fingerprint(healthy_url)
    trigger = reference.TRIGGER_SQL_PATH
    config = rehearsal_config(tmp_path, tmp_path / "backups", reference.MIGRATIONS_DIR,
                              [str(trigger), str(reference.BACKFILL_SQL_PATH)])
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "rehearsal", "--postdeploy-restore-into", into, "--postdeploy-config", str(config),
                    database_url=healthy_url, env={"TMPDIR": short_tmp, "POSTDEPLOY_RUN_ID": run_id})
    assert run.exit_code == 0, run.output
    assert run.signoff["verdict"] == "GO"
    assert not run.outcomes("failed") and not run.outcomes("error"), run.output
    applied = next(c for c in run.signoff["criteria"] if c["name"] == "test_applied_migrations_match_release")
    assert applied["outcome"] == "passed"
    observed = applied["observed"]
    # The one thing read of the target: its version.
    assert " (PostgreSQL 18." in observed and f", the target runs {server_major(healthy_url)}." in observed
    assert f"{LAST_MIGRATION}: " in observed and " s, AccessExclusiveLock on InventoryBalance" in observed
    assert applied["evidence"][0]["migration"] == LAST_MIGRATION
    assert fingerprint(healthy_url) == before, "the target database is unchanged"
    assert_nothing_left(short_tmp)
    assert not containers_of(run_id), "the scratch container is removed"


def test_release_that_cannot_apply_is_no_go(server, healthy_url, run_suite, tmp_path, short_tmp, dump_bin):
    demo_backups(healthy_url, tmp_path / "backups", bin_dir=dump_bin)
    before = fingerprint(healthy_url)
    (tmp_path / "rollback.sql").write_text(ROLLBACK_TRIGGER)
    config = rehearsal_config(tmp_path, tmp_path / "backups", RELEASES / "next_unique_item_name", [],
                              rollback=("rollback.sql",))
    # Under xdist: the workers read the rehearsal's record from the target the controller hands them.
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "rehearsal", "-n", "2", "--postdeploy-config", str(config),
                    database_url=healthy_url, env={"TMPDIR": short_tmp})
    assert run.exit_code == 1, run.output
    assert run.signoff["verdict"] == "NO-GO"
    assert {"test_applied_migrations_match_release", "test_no_failed_migration"} <= run.outcomes("failed")
    applied = next(c for c in run.signoff["criteria"] if c["name"] == "test_applied_migrations_match_release")
    assert UNIQUE_NAME_MIGRATION in applied["message"]
    assert "could not create unique index" in applied["message"] and "23505" in applied["message"]
    # The way back is not tried from a forward that failed: said, and blocking.
    rollback = next(c for c in run.signoff["criteria"] if c["name"] == "test_rollback_rehearsed")
    assert rollback["outcome"] == "skipped", rollback
    assert rollback["message"].startswith(f"rollback not rehearsed: the forward rehearsal failed ({UNIQUE_NAME_MIGRATION}:")
    assert run.signoff["sections"][0]["status"] == "not run"
    assert fingerprint(healthy_url) == before, "the target database is unchanged"
    assert_nothing_left(short_tmp)


@pytest.mark.parametrize("phase", ["after_migrate", "rollback", "rolled-back sign-off"])
def test_ctrl_c_during_the_rehearsal_leaves_no_server(phase, server, healthy_url, tmp_path, short_tmp, dump_bin):
    demo_backups(healthy_url, tmp_path / "backups", bin_dir=dump_bin)
    started = tmp_path / "step-started"
    script = tmp_path / "slow_step.py"
    script.write_text(f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(120)\n")
    step = f"{sys.executable} {script}"
    if phase == "rollback":  # after the forward sign-off, before the throwaway server stops
        config = rehearsal_config(tmp_path, tmp_path / "backups", reference.MIGRATIONS_DIR, [], rollback=(step,))
    elif phase == "rolled-back sign-off":  # the run of the criteria on the rolled-back copy
        (tmp_path / "nothing.sql").write_text("SELECT 1;")
        config = rehearsal_config(tmp_path, tmp_path / "backups", reference.MIGRATIONS_DIR, [], rollback=("nothing.sql",))
    else:
        config = rehearsal_config(tmp_path, tmp_path / "backups", reference.MIGRATIONS_DIR, [step])
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
         "-p", "no:cacheprovider", "--postdeploy-report-dir", str(tmp_path / "reports"), str(ROOT / "verifications"),
         "-m", "post_deploy", "--postdeploy-target", "rehearsal", "--postdeploy-config", str(config)],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "TMPDIR": short_tmp,
                           "DATABASE_URL": healthy_url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    def reached() -> bool:
        if phase != "rolled-back sign-off":
            return started.exists()
        for process in psutil.process_iter(["cmdline"]):
            line = process.info["cmdline"] or []
            if "--postdeploy-rolled-back" in line and str(tmp_path) in " ".join(line):
                return True
        return False

    try:
        deadline = time.monotonic() + 120
        while not reached() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reached(), child.stdout.read() if child.poll() is not None else f"{phase} never started"
        assert processes_under(short_tmp), "the throwaway server runs during the rehearsal"
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    assert "Traceback" not in output
    assert f"interrupted by SIGINT during {'target start-up' if phase == 'after_migrate' else 'the rollback rehearsal'}" \
        in output, output
    assert_nothing_left(short_tmp)


def test_rehearsal_needs_a_folder_and_a_dump_it_can_restore(server, healthy_url, run_suite, tmp_path, short_tmp):
    from postdeploy.reference.backups import backup_source

    config = tmp_path / "no-folder.toml"
    config.write_text(server.backup_config)
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "rehearsal", "--postdeploy-config", str(config), database_url=healthy_url)
    assert run.exit_code == 4 and "--postdeploy-target rehearsal needs the release's migrations" in run.output, run.output
    with backup_source("pgbackrest_ok", None, tmp_path / "pgbackrest") as (backup, _):
        config.write_text(backup + server.release_config)
        run = run_suite("-m", "post_deploy", "--postdeploy-target", "rehearsal", "--postdeploy-config", str(config),
                        database_url=healthy_url, env={"TMPDIR": short_tmp})
    assert run.exit_code == 4, run.output
    assert "the pgbackrest provider's backups cannot be restored here: pgBackRest backups are physical" in run.output
    assert "Traceback" not in run.output
    assert_nothing_left(short_tmp)


# The way back from add_balance_table, as an operator would write it.
ROLLBACK_TRIGGER = 'DROP TRIGGER "stock_movement_balance" ON "StockMovement";\n'
ROLLBACK_FUNCTION = 'DROP FUNCTION "apply_stock_movement"();\n'
ROLLBACK_TABLE = 'DROP TABLE "InventoryBalance";\n'
# As `prisma migrate resolve --postdeploy-rolled-back` leaves a row.
MARK_ROLLED_BACK = f"UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = '{LAST_MIGRATION}';\n"
ROLLBACKS = {
    "complete": [ROLLBACK_TRIGGER + ROLLBACK_FUNCTION + ROLLBACK_TABLE + MARK_ROLLED_BACK],
    "rows_deleted": [ROLLBACK_TRIGGER + ROLLBACK_FUNCTION + ROLLBACK_TABLE
                     + f"DELETE FROM _prisma_migrations WHERE migration_name = '{LAST_MIGRATION}';\n"],
    "forgets_function": [ROLLBACK_TRIGGER + ROLLBACK_TABLE + MARK_ROLLED_BACK],
    "deletes_movements": [ROLLBACK_TRIGGER + ROLLBACK_FUNCTION + ROLLBACK_TABLE + MARK_ROLLED_BACK,
                          'DELETE FROM "StockMovement" WHERE id IN (SELECT id FROM "StockMovement" ORDER BY id LIMIT 3);\n'],
    "sql_error": [ROLLBACK_TRIGGER, 'DROP FUNCTION "apply_stock_movment"();\n', ROLLBACK_TABLE],
    "leaves_table": [ROLLBACK_TRIGGER + ROLLBACK_FUNCTION + MARK_ROLLED_BACK],
    "drops_an_index": [ROLLBACK_TRIGGER + ROLLBACK_FUNCTION + ROLLBACK_TABLE + MARK_ROLLED_BACK
                       + 'DROP INDEX "ReconciliationRun_startedAt_idx";\n'],
}


def rehearse_rollback(name, server, healthy_url, run_suite, tmp_path, short_tmp, dump_bin, *, rehearsal="",
                      backup="", args=()):
    """Rehearse add_balance_table on a dump taken before it, with the named rollback: the run, and
    the fingerprint check of the target."""
    with psycopg.connect(healthy_url, autocommit=True) as conn:
        conn.execute(BEFORE_LAST_MIGRATION)
    demo_backups(healthy_url, tmp_path / "backups", bin_dir=dump_bin)
    before = fingerprint(healthy_url)
    steps = []
    for n, script in enumerate(ROLLBACKS[name], 1):
        (tmp_path / f"rollback-{n}.sql").write_text(script)
        steps.append(f"rollback-{n}.sql")  # relative to the configuration's folder
    config = rehearsal_config(tmp_path, tmp_path / "backups", reference.MIGRATIONS_DIR,
                              [str(reference.TRIGGER_SQL_PATH), str(reference.BACKFILL_SQL_PATH)],
                              rollback=tuple(steps), rehearsal=rehearsal, backup=backup)
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "rehearsal", "--postdeploy-config", str(config), *args,
                    database_url=healthy_url, env={"TMPDIR": short_tmp})
    assert fingerprint(healthy_url) == before, "the target database is unchanged"
    assert_nothing_left(short_tmp)
    return run


def rollback_of(run) -> tuple[dict, dict]:
    """The way back's criterion and report section."""
    criterion = next(c for c in run.signoff["criteria"] if c["name"] == "test_rollback_rehearsed")
    (section,) = run.signoff["sections"]
    return criterion, section


@pytest.mark.parametrize("name", ["complete", "rows_deleted"])
def test_complete_rollback_signs_off_go_against_the_previous_release(name, server, healthy_url, run_suite, tmp_path,
                                                                     short_tmp, dump_bin):
    # The complete rollback also goes forward again: the same schema, GO.
    trip = "round_trip = true" if name == "complete" else ""
    run = rehearse_rollback(name, server, healthy_url, run_suite, tmp_path, short_tmp, dump_bin, rehearsal=trip)
    assert run.exit_code == 0, run.output
    assert run.signoff["verdict"] == "GO"
    criterion, section = rollback_of(run)
    assert criterion["outcome"] == "passed" and criterion["area"] == "migration"
    assert section["title"] == "Rollback rehearsed" and section["status"] == "GO"
    lines = "\n".join(section["lines"])
    assert f"taking back {LAST_MIGRATION}" in lines
    assert "rolled-back sign-off against the previous release: GO" in lines
    assert "balance criteria not applicable: the previous release has no InventoryBalance" in lines
    step = section["rows"][0]
    assert step["step"] == "rollback-1.sql" and step["error"] == ""
    assert step["strongest lock"] == "AccessExclusiveLock on StockMovement"  # DROP TRIGGER's (and the tables')
    if trip:
        assert ("round trip: the release applied again (1 migration(s), 2 after_migrate step(s)) and built the schema"
                " the first forward built") in lines
        assert [row["phase"] for row in section["rows"]] == ["rollback"] + ["forward again"] * 3
    else:
        assert len(section["rows"]) == 1 and "round trip" not in lines
    # The copy's own report, inside the run's: every criterion as the previous release has them.
    copy = json.loads(next((run.folder / "rolled-back").glob("env-*/sign-off.json")).read_text())
    outcomes = {c["name"]: c["outcome"] for c in copy["criteria"]}
    assert outcomes["test_schema_matches_release"] == "passed"
    assert outcomes["test_applied_migrations_match_release"] == "passed"
    assert outcomes["test_no_rows_lost"] == "passed"
    assert outcomes["test_balances_reconcile_with_ledger"] == "not applicable"
    reconcile = next(c for c in copy["criteria"] if c["name"] == "test_balances_reconcile_with_ledger")
    assert reconcile["observed"] == ("not applicable: a balance table kept from a ledger"
                                     " (rolled back to the previous release, which has no InventoryBalance)")
    assert outcomes["test_no_orphan_tenant_values"] == "passed"
    assert outcomes["test_tenant_backfill_complete"] == "passed"
    # Judged on what a rollback can break, nothing else: not the backup folder, HTTP or logs.
    assert {c["area"] for c in copy["criteria"]} <= set(ROLLBACK_AREAS), copy["criteria"]
    assert copy["verdict"] == "GO" and [line["title"] for line in copy["success_criteria"]] == [
        "All migrations completed successfully", "Zero data loss", "Tenant isolation verified", "Balance queries working"]
    assert "Rollback rehearsed: GO" in run.output
    html = (run.folder / "sign-off.html").read_text()
    assert "Rollback rehearsed" in html and "rollback-1.sql" in html
    assert (run.folder / section["link"]).is_file() and f'href="{section["link"]}"' in html
    assert "### Rollback rehearsed: GO" in (run.folder / "sign-off.md").read_text()


@EMBEDDED_ONLY
@pytest.mark.parametrize("selection, copy_verdict", [
    ("post_deploy and (migration or tenancy or balance or data)", "GO"),
    ("post_deploy and migration", "PARTIAL GO"),
])
def test_rolled_back_copy_is_signed_off_within_the_runs_selection(selection, copy_verdict, server, healthy_url, run_suite,
                                                                    tmp_path, short_tmp, dump_bin):
    # One fresh dump in the backup folder: "too few to show a schedule" were the copy judged on backups.
    run = rehearse_rollback("complete", server, healthy_url, run_suite, tmp_path, short_tmp, dump_bin,
                            args=("-m", selection))
    assert run.exit_code == 7 and run.signoff["verdict"] == "PARTIAL GO", run.output  # the run left areas out
    criterion, section = rollback_of(run)
    assert criterion["outcome"] == "passed" and section["status"] == "GO", criterion
    copy = json.loads(next((run.folder / "rolled-back").glob("env-*/sign-off.json")).read_text())
    assert copy["verdict"] == copy_verdict, copy["summary"]
    ran = {c["area"] for c in copy["criteria"] if c["outcome"] != "not selected"}
    assert ran == ({"migration"} if selection.endswith("migration") else set(ROLLBACK_AREAS)), copy["criteria"]
    assert not {c["name"] for c in copy["criteria"]} & APP_CRITERIA


@EMBEDDED_ONLY  # the way back's logic does not depend on the server; the complete rollback runs on each
@pytest.mark.parametrize("name, failed, named", [
    ("forgets_function", "test_schema_matches_release", "function apply_stock_movement() extra"),
    ("deletes_movements", "test_no_rows_lost", "StockMovement (all rows)"),
])
def test_incomplete_rollback_is_no_go(name, failed, named, server, healthy_url, run_suite, tmp_path, short_tmp,
                                      dump_bin):
    run = rehearse_rollback(name, server, healthy_url, run_suite, tmp_path, short_tmp, dump_bin)
    assert run.exit_code == 1, run.output
    assert run.signoff["verdict"] == "NO-GO"
    assert run.outcomes("failed") == {"test_rollback_rehearsed"}, run.output  # the forward sign-off is GO
    criterion, section = rollback_of(run)
    assert section["status"] == "NO-GO"
    assert "the rolled-back copy's sign-off is NO-GO" in criterion["observed"]
    assert f"{failed}: " in criterion["observed"] and named in criterion["observed"], criterion
    copy = json.loads(next((run.folder / "rolled-back").glob("env-*/sign-off.json")).read_text())
    failing = next(c for c in copy["criteria"] if c["name"] == failed)
    assert failing["outcome"] == "failed"
    if name == "forgets_function":
        assert failing["evidence"][0]["object"] == "function apply_stock_movement()", failing
        assert failing["evidence"][0]["change"] == "extra"
    else:
        assert failing["evidence"][0]["table"] == "StockMovement" and failing["evidence"][0]["lost"] == "3", failing


@EMBEDDED_ONLY  # the way back's logic does not depend on the server; the complete rollback runs on each
def test_failing_rollback_step_is_no_go_naming_the_step_and_the_error(server, healthy_url, run_suite, tmp_path,
                                                                      short_tmp, dump_bin):
    # With an RTO no restore meets: the restore criterion fails too, showing the time observed.
    run = rehearse_rollback("sql_error", server, healthy_url, run_suite, tmp_path, short_tmp, dump_bin,
                            backup="max_restore_minutes = 0.0001")
    assert run.exit_code == 1, run.output
    assert run.outcomes("failed") == {"test_rollback_rehearsed", "test_restore_latest_backup"}, run.output
    criterion, section = rollback_of(run)
    assert ('rollback step rollback-2.sql failed: [42883] function apply_stock_movment() does not exist'
            in criterion["observed"]), criterion
    assert [row["step"] for row in section["rows"]] == ["rollback-1.sql", "rollback-2.sql", "rollback-3.sql"]
    assert section["rows"][2]["error"] == "not run: an earlier step failed"
    assert section["lines"][1:] == [
        "failed: rollback step rollback-2.sql: [42883] function apply_stock_movment() does not exist",
        "rolled-back sign-off: not run (a rollback step failed)",
    ]
    assert "  failed: rollback step rollback-2.sql: [42883] function apply_stock_movment() does not exist" in run.output
    assert not (run.folder / "rolled-back").exists()
    restore = next(c for c in run.signoff["criteria"] if c["name"] == "test_restore_latest_backup")
    assert "within the RTO of 0.0001 min (backup.max_restore_minutes)" in restore["wanted"]
    assert "for the rehearsal, inventory-" in restore["observed"] and " min): dump " in restore["observed"]
    assert restore["figures"]["restore_seconds"] > 0.006 and restore["figures"]["restore_rows"] > 0
    with sqlite3.connect(run.report_dir / "history.sqlite") as conn:
        figures = dict(conn.execute("SELECT name, value FROM figure WHERE criterion = 'test_restore_latest_backup'"))
    assert figures["restore_seconds"] == restore["figures"]["restore_seconds"]
    assert figures["restore_rto_seconds"] == pytest.approx(0.006)
    history = (run.report_dir / "history.html").read_text()
    assert "Restore time of the newest backup" in history and "RTO (backup.max_restore_minutes)" in history


@EMBEDDED_ONLY  # the way back's logic does not depend on the server; the complete rollback runs on each
@pytest.mark.parametrize("name, required, named", [
    ("leaves_table", True, "round trip: the second forward failed: migration 20240301000000_add_balance_table: [42P07]"
                           ' relation "InventoryBalance" already exists'),
    # Not required: reported, but the run's verdict does not depend on it.
    ("leaves_table", False, "round trip: the second forward failed: migration 20240301000000_add_balance_table"),
    ("drops_an_index", True, "round trip: the second forward built a different schema: 1 objects differ"
                             " (index ReconciliationRun.ReconciliationRun_startedAt_idx missing)"),
])
def test_round_trip_names_what_the_rollback_left_behind(name, required, named, server, healthy_url, run_suite,
                                                        tmp_path, short_tmp, dump_bin):
    run = rehearse_rollback(name, server, healthy_url, run_suite, tmp_path, short_tmp, dump_bin,
                            rehearsal=f"round_trip = true\nrollback_required = {str(required).lower()}")
    criterion, section = rollback_of(run)
    assert named in criterion["observed"], criterion
    assert section["status"] == "NO-GO"
    if not required:
        assert run.exit_code == 0 and run.signoff["verdict"] == "GO", run.output
        assert criterion["outcome"] == "skipped" and criterion["message"].startswith(
            "rollback failed, not required ([rehearsal] rollback_required = false): ")
        assert section["lines"][-1].startswith("not required ([rehearsal] rollback_required = false)")
        return
    assert run.exit_code == 1 and criterion["outcome"] == "failed", run.output
    if name == "leaves_table":
        assert section["rows"][-1]["phase"] == "forward again" and "already exists" in section["rows"][-1]["error"]
    else:  # the second forward itself succeeded
        assert [r["error"] for r in section["rows"] if r["phase"] == "forward again"] == ["", "", ""]
        assert "differs after the second forward: index ReconciliationRun.ReconciliationRun_startedAt_idx (missing)" \
            in section["lines"]


@MACHINE_ONLY
def test_a_dump_creating_uuid_ossp_is_rehearsed_on_the_machines_postgresql(server, healthy_url, run_suite, tmp_path,
                                                                           short_tmp, dump_bin):
    """The embedded server lacks uuid-ossp: production's dump is restored, migrated and signed off
    on a throwaway cluster of this machine's own PostgreSQL instead."""
    with psycopg.connect(healthy_url, autocommit=True) as conn:
        conn.execute(BEFORE_LAST_MIGRATION)
        conn.execute('CREATE EXTENSION "uuid-ossp"')
    demo_backups(healthy_url, tmp_path / "backups", bin_dir=dump_bin)
    config = rehearsal_config(tmp_path, tmp_path / "backups", reference.MIGRATIONS_DIR,
                              [str(reference.TRIGGER_SQL_PATH), str(reference.BACKFILL_SQL_PATH)])
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "rehearsal", "--postdeploy-config", str(config),
                    database_url=healthy_url, env={"TMPDIR": short_tmp})
    assert run.exit_code == 0 and run.signoff["verdict"] == "GO", run.output
    schema = next(c for c in run.signoff["criteria"] if c["name"] == "test_schema_matches_release")
    assert schema["outcome"] == "passed", schema
    assert_nothing_left(short_tmp)
