"""The backup area: every provider against real documents, real dumps and a loopback Railway API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from postdeploy import reference
from postdeploy.backup.checks import gaps, schedule_shortfall
from postdeploy.backup.directory import DirectoryProvider, time_from_name
from postdeploy.backup.model import BackupSourceError
from postdeploy.backup.pgbackrest import PgBackRestProvider
from postdeploy.backup.railway import RailwayProvider
from postdeploy.backup.walg import WalgProvider
from postdeploy.reference import FAULTS
from postdeploy.reference.backups import (
    ENVIRONMENT_ID,
    RAILWAY_TOKEN,
    Dumps,
    RailwayAPI,
    backup_source,
    pg_dump,
    pgbackrest_info,
    walg_backup_list,
    walg_time_order,
)
from postdeploy.signoff.verdict import PARTIAL_EXIT  # a run narrowed by -m/-k: a partial GO at best

BACKUP_CRITERIA = {
    "test_latest_backup_age",
    "test_retention_coverage",
    "test_backups_automated",
    "test_final_backup_before_deploy",
    "test_restore_latest_backup",
}
MESSAGES = {  # fault: (criterion, what its failure message says)
    "stale_backup": ("test_latest_backup_age", "is 26 h 00 min old"),
    "railway_daily_only": ("test_retention_coverage", "a DAILY schedule alone keeps backups 6 d 0 h: add a WEEKLY or MONTHLY"),
    "railway_invalid_token": ("test_latest_backup_age", "refused the token (HTTP 401)"),
    "railway_not_authorized": ("test_backups_automated", "Railway API error on environment: Not Authorized"),
    "pgbackrest_no_valid_backups": ("test_retention_coverage", "status code 2 (no valid backups)"),
    "backup_gap": ("test_backups_automated", "the longest 3 d 0 h"),
    "no_final_backup": ("test_final_backup_before_deploy", "none; newest before the deploy:"),
    "corrupt_dump": ("test_restore_latest_backup", "pg_restore: error:"),
    "dump_missing_table": ("test_restore_latest_backup", "User MISSING from the backup"),
    "walg_time_order": ("test_latest_backup_age", "is 29 h 5"),
}
BACKUP_FAULTS = sorted(name for name, fault in FAULTS.items() if fault.backup)


@pytest.fixture(scope="module")
def deployment(embedded, tmp_path_factory) -> Iterator[tuple[str, Dumps]]:
    """A healthy reference deployment on the embedded server and real pg_dump files of it."""
    url = embedded.create_database(f"backup_{os.getpid()}")
    reference.load(url, scale=500)
    yield url, Dumps.of(url, tmp_path_factory.mktemp("dumps"))


def sign_off(run_suite, tmp_path: Path, deployment, scenario: str, *args: str):
    url, dumps = deployment
    with backup_source(scenario, dumps, tmp_path / "source") as (config, env):
        path = tmp_path / "backup.toml"
        path.write_text(config)
        run = run_suite("-m", "post_deploy and backup", "--postdeploy-config", str(path), *args, database_url=url, env=env)
    return run


def backup_outcomes(run) -> dict[str, str]:
    return {c["name"]: c["outcome"] for c in run.selected}


# Whole runs: healthy sources are GO, every backup fault is NO-GO on its criteria.


@pytest.mark.parametrize("scenario", ["healthy", "railway_healthy", "pgbackrest_healthy", "walg_healthy"])
def test_healthy_backup_source_is_go(scenario, deployment, run_suite, tmp_path):
    run = sign_off(run_suite, tmp_path, deployment, scenario, "--postdeploy-restore-test")
    assert run.exit_code == PARTIAL_EXIT and run.signoff["not_selected"] == [
        t for t in run.signoff["not_selected"] if t != "Backups automated"], run.output
    outcomes = backup_outcomes(run)
    assert set(outcomes) == BACKUP_CRITERIA
    for criterion in run.selected:
        assert criterion["observed"], criterion
    age = next(c for c in run.signoff["criteria"] if c["name"] == "test_latest_backup_age")
    assert "database now()" in age["observed"] and "clock: database now()" in age["wanted"]
    restore = next(c for c in run.signoff["criteria"] if c["name"] == "test_restore_latest_backup")
    if scenario == "healthy":  # a dump folder: restored into a scratch server and compared
        assert set(run.outcomes("passed")) == BACKUP_CRITERIA
        assert " restored into the embedded server in " in restore["observed"], restore
    else:  # physical backups or Railway volumes cannot be fetched: an optional skip that says so
        assert set(run.outcomes("passed")) == BACKUP_CRITERIA - {"test_restore_latest_backup"}
        assert restore["outcome"] == "skipped" and "cannot be" in restore["message"], restore
        assert run.output.rstrip().endswith("1 optional skipped")



def test_restore_slower_than_the_rto_fails_showing_the_time(deployment, run_suite, tmp_path):
    url, dumps = deployment
    with backup_source("healthy", dumps, tmp_path / "source") as (config, env):
        path = tmp_path / "backup.toml"
        path.write_text(config.replace('provider = "directory"\n', 'provider = "directory"\nmax_restore_minutes = 0.0001\n'))
        run = run_suite("-m", "post_deploy and backup", "--postdeploy-config", str(path), "--postdeploy-restore-test", database_url=url, env=env)
    assert run.exit_code == 1, run.output
    assert run.outcomes("failed") == {"test_restore_latest_backup"}
    restore = next(c for c in run.signoff["criteria"] if c["name"] == "test_restore_latest_backup")
    assert "within the RTO of 0.0001 min (backup.max_restore_minutes)" in restore["wanted"]
    seconds = restore["figures"]["restore_seconds"]
    assert f" restored into the embedded server in {seconds:.1f} s ({seconds / 60:.3g} min; dump " in restore["observed"]
    assert restore["figures"]["restore_dump_bytes"] == dumps.whole.stat().st_size
    assert restore["figures"]["restore_rows"] > 0 and restore["figures"]["restore_rto_seconds"] == pytest.approx(0.006)
    history = (run.report_dir / "history.html").read_text()
    assert 'id="chart-restore-time"' in history and "RTO (backup.max_restore_minutes)" in history

def test_demo_with_restore_test_is_go(run_suite):
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-restore-test", "-n", "2")
    assert run.exit_code == 0, run.output
    # Optional skips left: alert delivery (--postdeploy-send-test-alert) and RLS (the RLS variant).
    assert run.outcomes("skipped") == {"test_alert_delivery", "test_row_level_security"}
    assert run.output.rstrip().splitlines()[-1] == f"SIGN-OFF: GO - {len(run.signoff['criteria']) - 2} passed, 2 optional skipped"
    restore = next(c for c in run.signoff["criteria"] if c["name"] == "test_restore_latest_backup")
    assert " restored into the embedded server in " in restore["observed"] and "as the target" in restore["observed"]
    assert {row["table"] for row in restore["evidence"]} >= {"InventoryBalance", "Organization"}  # evidence: first 5 rows


@pytest.mark.parametrize("fault", BACKUP_FAULTS, ids=str)
def test_backup_fault_fails_its_criterion(fault, deployment, run_suite, tmp_path):
    spec = FAULTS[fault]
    run = sign_off(run_suite, tmp_path, deployment, spec.backup, *spec.args)
    assert run.exit_code == 1, run.output
    assert run.output.rstrip().splitlines()[-1].startswith("SIGN-OFF: NO-GO - ")
    assert run.outcomes("failed") == set(spec.criteria), run.output
    assert not run.outcomes("error"), run.output
    for criterion in run.signoff["criteria"]:
        if criterion["outcome"] == "failed":
            assert ": FAILED (wanted " in criterion["message"], criterion["message"]
    assert "Traceback" not in run.output
    if fault in MESSAGES:
        name, text = MESSAGES[fault]
        criterion = next(c for c in run.signoff["criteria"] if c["name"] == name)
        assert text in criterion["message"], criterion["message"]
    # The token never reaches the terminal or any report file.
    everything = run.output + "".join(p.read_text() for p in run.folder.iterdir())
    assert RAILWAY_TOKEN not in everything and "rw-wrong-token" not in everything


def test_unconfigured_backup_source_blocks_go(deployment, run_suite, tmp_path):
    """--postdeploy-target env without a backup source: a blocking skip that names what to set."""
    url, _ = deployment
    run = run_suite("-m", "post_deploy and backup", database_url=url)
    assert run.exit_code == 1, run.output
    assert "4 required checks skipped" in run.output.rstrip().splitlines()[-1]
    skipped = [c for c in run.signoff["criteria"] if c["outcome"] == "skipped"]
    assert len(skipped) == 5
    assert all("backup.provider" in c["message"] or "not requested" in c["message"] for c in skipped)


def test_deploy_started_option(deployment, run_suite, tmp_path):
    # A deploy that started 3 days ago had no backup in the 2 hours before it.
    three_days = (datetime.now(UTC) - timedelta(days=3, hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = sign_off(run_suite, tmp_path, deployment, "healthy", "--postdeploy-deploy-started", three_days)
    assert run.outcomes("failed") == {"test_final_backup_before_deploy"}, run.output
    run = run_suite("-m", "backup", "--postdeploy-deploy-started", "yesterday", database_url=deployment[0])
    assert run.exit_code == 4 and "--postdeploy-deploy-started 'yesterday' is not an ISO-8601 time" in run.output


# Railway: headers, hosts, errors.


def railway(url: str, environ: dict[str, str], seen: list[httpx.Request], **kwargs) -> RailwayProvider:
    return RailwayProvider(api_url=url, environ=environ, environment_id=ENVIRONMENT_ID, on_request=seen.append, **kwargs)


def test_railway_requests_go_to_the_api_url_only_with_the_right_header():
    api = RailwayAPI("healthy")
    with api.serve() as url:
        seen: list[httpx.Request] = []
        inventory = railway(url, {"RAILWAY_TOKEN": RAILWAY_TOKEN}, seen).inventory()
    assert {str(r.url) for r in seen} == {url}
    assert len(seen) == 3  # environment lookup, schedules, backups
    assert all(r["headers"]["project-access-token"] == RAILWAY_TOKEN for r in api.requests)
    assert all("authorization" not in r["headers"] for r in api.requests)
    assert "environment(" in api.requests[0]["body"]["query"]
    assert {s.kind for s in inventory.schedules} == {"DAILY", "WEEKLY"}
    assert inventory.newest.kind == "manual" and all(b.status == "" for b in inventory.backups)
    assert any("no status field" in note for note in inventory.notes)


def test_railway_account_token_is_a_bearer_token():
    api = RailwayAPI("healthy")
    with api.serve() as url:
        railway(url, {"RAILWAY_API_TOKEN": RAILWAY_TOKEN}, []).inventory()
    assert all(r["headers"]["authorization"] == f"Bearer {RAILWAY_TOKEN}" for r in api.requests)


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("bad_token", "refused the token (HTTP 401)"),
        ("not_authorized", "Not Authorized"),
        ("rate_limited", "rate limit reached (HTTP 429; Retry-After 120 s)"),
    ],
)
def test_railway_errors_are_plain(scenario, message):
    with RailwayAPI(scenario).serve() as url:
        with pytest.raises(BackupSourceError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
            railway(url, {"RAILWAY_TOKEN": RAILWAY_TOKEN}, []).inventory()
    assert RAILWAY_TOKEN not in str(caught.value)


def test_railway_without_token_or_volume_says_what_to_set():
    with pytest.raises(BackupSourceError, match="set RAILWAY_TOKEN"):
        railway("http://127.0.0.1:9/graphql/v2", {}, [])
    with pytest.raises(BackupSourceError, match="volume_instance_id"):
        RailwayProvider(api_url="http://127.0.0.1:9/", environ={"RAILWAY_TOKEN": RAILWAY_TOKEN}).inventory()


# pgBackRest, WAL-G and dump folders: the documented shapes.


def test_pgbackrest_info_is_read(tmp_path):
    now = datetime.now(UTC)
    path = tmp_path / "info.json"
    path.write_text(__import__("json").dumps(pgbackrest_info(now)))
    inventory = PgBackRestProvider(file=str(path), command=(), stanza="main", timeout_s=5).inventory()
    assert {b.kind for b in inventory.backups} == {"full", "diff", "incr"}
    assert inventory.newest.kind == "incr" and inventory.newest.started < inventory.newest.finished
    with pytest.raises(BackupSourceError, match="wanted stanza 'other'; found: main"):
        PgBackRestProvider(file=str(path), command=(), stanza="other", timeout_s=5).inventory()
    with pytest.raises(BackupSourceError, match="not-a-tool not found"):
        PgBackRestProvider(file="", command=("not-a-tool", "info"), stanza="", timeout_s=5).inventory()


def test_walg_orders_by_start_time_not_time(tmp_path):
    now = datetime.now(UTC)
    document = walg_time_order(now)
    path = tmp_path / "list.json"
    path.write_text(__import__("json").dumps(document))
    inventory = WalgProvider(file=str(path), command=(), timeout_s=5).inventory()
    newest_by_time = document[-1]["backup_name"]
    assert inventory.newest.id != newest_by_time
    assert timedelta(hours=29) < now - inventory.newest.started < timedelta(hours=31)
    path.write_text(__import__("json").dumps(walg_backup_list(now)))
    assert now - WalgProvider(file=str(path), command=(), timeout_s=5).inventory().newest.finished < timedelta(hours=1)


def test_dump_folder_times_from_names_or_modification_times(deployment, tmp_path):
    _, dumps = deployment
    (tmp_path / "inventory-20260314T030000Z.dump").write_bytes(dumps.whole.read_bytes())
    undated = tmp_path / "nightly.dump"
    undated.write_bytes(dumps.whole.read_bytes())
    os.utime(undated, (1_700_000_000, 1_700_000_000))
    (tmp_path / "README.txt").write_text("not a dump")
    inventory = DirectoryProvider(tmp_path).inventory()
    assert [b.finished for b in inventory.backups] == [
        datetime.fromtimestamp(1_700_000_000, UTC),
        datetime(2026, 3, 14, 3, 0, tzinfo=UTC),
    ]
    assert any("modification time" in n for n in inventory.notes) and any("1 file(s) that are not" in n for n in inventory.notes)
    assert time_from_name("db_2026-03-14_03-00-00.sql") == datetime(2026, 3, 14, 3, 0, tzinfo=UTC)
    with pytest.raises(BackupSourceError, match="does not exist"):
        DirectoryProvider(tmp_path / "nowhere").inventory()


def test_gaps_and_schedule_shortfall():
    from postdeploy.backup.model import Backup, Schedule

    now = datetime(2026, 3, 20, tzinfo=UTC)
    days = [0, 1, 2, 5, 6]  # nothing on days 3 and 4
    backups = [Backup(f"b{d}", "dump", now - timedelta(days=d)) for d in days]
    found = gaps(backups, now, window=timedelta(days=14), max_gap=timedelta(hours=25))
    assert [(g.after, g.next, g.gap) for g in found] == [("b5", "b2", "3 d 0 h")]
    daily = Schedule("s", "Daily", "DAILY", "0 3 * * *", timedelta(days=6))
    weekly = Schedule("w", "Weekly", "WEEKLY", "0 3 * * 0", timedelta(days=30))
    assert "add a WEEKLY or MONTHLY schedule" in schedule_shortfall((daily,), timedelta(days=14))
    assert schedule_shortfall((daily, weekly), timedelta(days=14)) == ""
    assert schedule_shortfall((), timedelta(days=14)) == "no backup schedule"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[backup]\nprovider = "s3"\n', "backup.provider must be one of directory, railway, pgbackrest, walg"),
        ('[backup.railway]\napi_ur = "x"\n', "unknown key 'backup.railway.api_ur'"),
        ("[backup]\nmax_age_hours = \"a day\"\n", "backup.max_age_hours must be a number"),
    ],
)
def test_backup_settings_are_validated(tmp_path, text, message):
    from postdeploy.signoff.settings import ConfigError, load_settings

    path = tmp_path / "postdeploy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, explicit=True)
    path.write_text('[backup]\nprovider = "walg"\nmax_age_hours = 30\n[backup.walg]\nfile = "list.json"\n')
    settings = load_settings(path, explicit=True).backup
    # A relative path in the file starts at the file's own folder, wherever the run starts.
    assert (settings.provider, settings.max_age_hours, settings.walg.file) == ("walg", 30.0, str(tmp_path / "list.json"))


def test_plain_format_dump_restores(deployment, tmp_path):
    import subprocess

    import psycopg

    from postdeploy.backup.restore import client_binaries, restore_test
    from postdeploy.signoff.settings import DatabaseSettings
    from postdeploy.database.session import connect

    url, _ = deployment
    plain = tmp_path / "inventory-20260314T030000Z.sql"
    subprocess.run([str(client_binaries() / "pg_dump"), "-Fp", "--no-owner", "-f", str(plain), url], check=True)
    (backup,) = DirectoryProvider(tmp_path).inventory().backups
    assert backup.kind == "pg_dump plain"
    with connect(url, DatabaseSettings()) as conn:
        result = restore_test(backup.id, plain, conn, ("public",), timeout_s=120, into="embedded", image="")
    assert not result.problems() and len(result.comparison()) == 8
    assert result.timing.dump_bytes == plain.stat().st_size and result.timing.rows == sum(result.backup_tables.values())
    # The scratch server is gone and the target untouched: it still answers, read-only.
    with psycopg.connect(url) as conn:
        assert conn.execute('SELECT count(*) FROM "Organization"').fetchone()[0] > 0


def test_a_dump_with_an_extension_the_embedded_server_lacks_restores_on_the_machines_postgresql(run_suite, tmp_path):
    """A production dump that creates uuid-ossp and pgcrypto: restored on this machine's own
    PostgreSQL (with its own pg_restore) instead of the embedded server, which lacks them."""
    from postdeploy.backup.restore import dump_extensions
    from postdeploy.scratch.local import LocalPostgres, describe_server, machine_binaries

    machine = machine_binaries()
    if machine is None:
        pytest.skip("no PostgreSQL server binaries on this machine (Debian: postgresql)")
    target = LocalPostgres(machine)
    try:
        url = target.create_database("tenants")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('CREATE EXTENSION "uuid-ossp"; CREATE EXTENSION pgcrypto;'
                         ' CREATE TABLE "Tenant" (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),'
                         ' secret bytea NOT NULL DEFAULT gen_random_bytes(8));'
                         ' INSERT INTO "Tenant" SELECT FROM generate_series(1, 25)')
        whole = pg_dump(url, tmp_path / "whole.dump", bin_dir=machine)  # as its operators take them
        assert {"uuid-ossp", "pgcrypto"} <= dump_extensions(whole)
        with backup_source("healthy", Dumps(whole, whole), tmp_path / "backups") as (config, env):
            path = tmp_path / "postdeploy.toml"
            path.write_text(config)
            run = run_suite("-m", "post_deploy and backup", "-k", "restore", "--postdeploy-restore-test",
                            "--postdeploy-config", str(path), database_url=url, env=env)
        (restore,) = run.selected
        assert restore["outcome"] == "passed", run.output
        assert (f" restored into {describe_server(machine)} (the embedded server lacks pgcrypto, uuid-ossp) in "
                in restore["observed"] and "1 tables, 25 rows, as the target" in restore["observed"]), restore
    finally:
        target.stop()
