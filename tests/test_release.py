"""The release's folder as the expected state: checksums, `migrate deploy`, status, drift, cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from postdeploy import reference
from postdeploy.migration.deploy import DeployRefused, deploy
from postdeploy.migration.drift import compare, describe
from postdeploy.migration.release import load_release
from postdeploy.migration.status import compare as status
from postdeploy.migration.tools.prisma import Prisma
from postdeploy.signoff.verdict import PARTIAL_EXIT  # a run narrowed by -m/-k: a partial GO at best

INIT = "20240101000000_init"


def make_release(folder: Path, migrations: dict[str, str]) -> Path:
    for name, script in migrations.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "migration.sql").write_bytes(script.encode())
    (folder / "migration_lock.toml").write_text('provider = "postgresql"\n')
    return folder


def rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT migration_name, checksum, finished_at IS NOT NULL, applied_steps_count, logs, length(id)"
            " FROM _prisma_migrations ORDER BY started_at, migration_name"
        ).fetchall()


def test_checksums_follow_prisma_line_ending_rules(tmp_path):
    lf = "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n"
    release = load_release(make_release(tmp_path, {"1_a": lf.replace("\n", "\r\n")}))
    (migration,) = release.migrations
    assert migration.checksum == hashlib.sha256(lf.replace("\n", "\r\n").encode()).hexdigest()
    assert migration.matches(hashlib.sha256(lf.encode()).hexdigest())  # applied from an LF checkout
    assert migration.matches(migration.checksum)
    assert not migration.matches(hashlib.sha256((lf + "-- edited\n").encode()).hexdigest())
    # Old engines wrote the hex without zero padding; Prisma still accepts such rows.
    legacy = "".join(f"{b:x}" for b in hashlib.sha256(lf.replace("\n", "\r\n").encode()).digest())
    assert len(legacy) < 64 and migration.matches(legacy)


def test_deploy_records_rows_and_stops_at_a_failure(server, tmp_path):
    folder = make_release(tmp_path / "release", {
        "1_init": "CREATE TABLE t (id int PRIMARY KEY, v int);\nINSERT INTO t VALUES (1, 1), (2, 1);",
        "2_unique": 'CREATE UNIQUE INDEX "t_v_key" ON t (v);',
        "3_after": "ALTER TABLE t ADD COLUMN w int;",
    })
    url = server.create_database("deploy")
    runs = deploy(url, load_release(folder))
    assert [r.migration for r in runs] == ["1_init", "2_unique"]
    assert not runs[0].error and runs[0].lock == "AccessExclusiveLock" and runs[0].table == "t"
    assert runs[1].error.startswith("[23505] could not create unique index")
    recorded = rows(url)
    assert [(r[0], r[2], r[3]) for r in recorded] == [("1_init", True, 1), ("2_unique", False, 0)]
    assert recorded[0][1] == hashlib.sha256((folder / "1_init" / "migration.sql").read_bytes()).hexdigest()
    assert "Database error code: 23505" in recorded[1][4] and recorded[0][5] == 36  # a uuid
    with pytest.raises(DeployRefused, match="2_unique must be resolved first"):
        deploy(url, load_release(folder))


def test_deploy_runs_a_concurrent_index_outside_a_transaction_as_prisma_does(server, tmp_path):
    folder = make_release(tmp_path / "release", {
        "1_init": "CREATE TABLE t (id int PRIMARY KEY, v int);",
        "2_concurrently": 'CREATE INDEX CONCURRENTLY "t_v_idx" ON t (v);',
    })
    url = server.create_database("concurrently")
    assert [r.error for r in deploy(url, load_release(folder))] == ["", ""]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v_idx'::regclass").fetchone()[0]
    assert [(r[0], r[2], r[3]) for r in rows(url)] == [("1_init", True, 1), ("2_concurrently", True, 1)]


def test_status_names_edited_pending_unknown_and_rolled_back(server, tmp_path):
    folder = make_release(tmp_path / "release", {"1_a": "CREATE TABLE a (id int);", "2_b": "CREATE TABLE b (id int);"})
    url = server.create_database("status")
    deploy(url, load_release(folder))
    (folder / "1_a" / "migration.sql").write_text("CREATE TABLE a (id bigint);")  # edited after it was applied
    make_release(folder, {"3_c": "CREATE TABLE c (id int);"})  # a new folder, never applied
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = '2_b'")
        conn.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at)"
                     " VALUES (gen_random_uuid()::text, 'x', '0_gone', now())")
        found = status(Prisma().read(conn, "public", None), load_release(folder))
    by_name = {p.migration: p for p in found}
    assert by_name["1_a"].problem == "modified after it was applied"
    assert by_name["1_a"].folder_checksum != by_name["1_a"].recorded_checksum
    assert by_name["2_b"].problem == "rolled back, never re-applied"
    assert by_name["3_c"].problem == "pending: never applied"
    assert by_name["0_gone"].problem == "applied in the database, no folder in the release"
    assert len(found) == 4



def test_previous_release_and_its_rolled_back_rows(server, tmp_path):
    """A rolled-back copy against the previous release: a taken-back migration's row is fine marked
    rolled back (as `prisma migrate resolve --postdeploy-rolled-back` leaves it) or gone; still applied, it fails."""
    folder = make_release(tmp_path / "release", {"1_a": "CREATE TABLE a (id int);", "2_b": "CREATE TABLE b (id int);"})
    (folder / "2_b" / "trigger.sql").write_text("SELECT 1;")
    release = load_release(folder, ("2_b/trigger.sql",))
    previous = release.without(("2_b",))
    assert previous.names() == ["1_a"] and previous.extra_sql == () and [m.name for m in previous.rolled_back] == ["2_b"]
    assert previous.content_hash() != release.content_hash()  # its schema is built and cached apart
    url = server.create_database("rolledback")
    deploy(url, release)
    with psycopg.connect(url, autocommit=True) as conn:
        (still,) = status(Prisma().read(conn, "public", None), previous)
        assert still.migration == "2_b" and still.problem.startswith("applied in the database after the rollback")
        conn.execute("UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = '2_b'")
        assert status(Prisma().read(conn, "public", None), previous) == []
        conn.execute("DELETE FROM _prisma_migrations WHERE migration_name = '2_b'")
        assert status(Prisma().read(conn, "public", None), previous) == []
        # Against the release itself, the rolled-back row is still what it was: pending.
        assert [p.problem for p in status(Prisma().read(conn, "public", None), release)] == ["pending: never applied"]


def test_rolled_back_settings_leave_out_what_the_previous_release_never_had():
    from postdeploy.migration.rollback import RolledBack, absent_tables
    from postdeploy.signoff.settings import Settings

    settings = Settings()
    schema = {"table Organization": {}, "table StockMovement": {}, "table User": {}, "table Location": {},
              "table InventoryItem": {}}
    told = RolledBack(("20240301000000_add_balance_table",), absent_tables(schema, settings))
    assert told.absent_tables == ("InventoryBalance",)
    rolled = told.settings(settings)
    assert rolled.migration.required == ("init", "add_organizations")
    assert "InventoryBalance" not in rolled.tenancy.tables and "StockMovement" in rolled.tenancy.tables
    assert not rolled.balance.enabled and not rolled.backup.restore_test
    assert told.notes(settings) == [
        "balance criteria not applicable: the previous release has no InventoryBalance",
        "tenancy criteria leave out InventoryBalance: the previous release has no such table",
    ]
    # Where the previous release has every table, nothing is left out.
    full = RolledBack(("20240401000000_unique_item_name",), ())
    assert full.settings(settings).balance.enabled and full.notes(settings) == []

def test_drift_reports_have_and_want_and_honours_ignore(server, tmp_path):
    folder = make_release(tmp_path / "release", {"1_a": """
CREATE TYPE "Status" AS ENUM ('open', 'closed');
CREATE TABLE "A" (id int PRIMARY KEY, s "Status" NOT NULL DEFAULT 'open', n text);
CREATE INDEX "A_n_idx" ON "A" (n);
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
ALTER TABLE "A" ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON "A" USING (n IS NOT NULL);
"""})
    urls = [server.create_database(f"drift{i}") for i in (1, 2)]
    for url in urls:
        deploy(url, load_release(folder))
    with psycopg.connect(urls[1], autocommit=True) as conn:
        conn.execute("""
ALTER TYPE "Status" ADD VALUE 'archived' BEFORE 'closed';
ALTER TABLE "A" ALTER COLUMN n SET NOT NULL, ADD COLUMN tmp_x int;
DROP INDEX "A_n_idx";
CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2';
DROP POLICY p ON "A";
""")
    described = []
    for url in urls:
        with psycopg.connect(url) as conn:
            described.append(describe(conn, ("public",), skip_tables=("_prisma_migrations",)))
    want, have = described
    drifts = {d.object: d for d in compare(have, want)}
    assert drifts["enum Status"].have == "values open, archived, closed" and drifts["enum Status"].want == "values open, closed"
    assert drifts["column A.n"].change == "changed" and drifts["column A.n"].have == "nullable NOT NULL"
    assert drifts["column A.tmp_x"].change == "extra" and drifts["index A.A_n_idx"].change == "missing"
    assert drifts["function f()"].change == "changed" and drifts["policy A.p"].change == "missing"
    # A function body is shown by its first differing line.
    assert drifts["function f()"].have == "definition line 4: AS $function$SELECT 2$function$"
    assert drifts["function f()"].want == "definition line 4: AS $function$SELECT 1$function$"
    assert set(drifts) == {"enum Status", "column A.n", "column A.tmp_x", "index A.A_n_idx", "function f()", "policy A.p"}
    ignored = {d.object for d in compare(have, want, ("A.tmp_*", "index *", "function f()"))}
    assert ignored == {"enum Status", "column A.n", "policy A.p"}


BUILD = """
import json, sys
from postdeploy.migration.release import load_release
from postdeploy.migration.scratch import release_schema
built = release_schema(load_release(sys.argv[1], ("20240301000000_add_balance_table/trigger.sql",)), ("public",), "_prisma_migrations")
print(json.dumps({"cached": built.cached, "objects": len(built.schema)}))
"""


def test_scratch_build_is_cached_once_for_concurrent_runs(tmp_path, short_tmp):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "POSTDEPLOY_CACHE_DIR": str(tmp_path / "cache"),
           "TMPDIR": short_tmp}
    command = [sys.executable, "-c", BUILD, str(reference.MIGRATIONS_DIR)]
    two = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    answers = sorted((json.loads(p.communicate(timeout=120)[0]) for p in two), key=lambda a: a["cached"])
    assert [a["cached"] for a in answers] == [False, True], "one builds, the other waits and reads"
    assert answers[0]["objects"] == answers[1]["objects"] > 50
    third = json.loads(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)
    assert third["cached"]
    assert len(list((tmp_path / "cache").glob("release-schema-*.json"))) == 1
    assert not list(Path(short_tmp).glob("postdeploy-*")), "the scratch server is removed"
    (tmp_path / "a-file").write_text("")  # a cache folder that cannot be made: built, not cached
    uncached = json.loads(subprocess.run(command, env=env | {"POSTDEPLOY_CACHE_DIR": str(tmp_path / "a-file" / "c")},
                                         capture_output=True, text=True, check=True).stdout)
    assert uncached == {"cached": False, "objects": third["objects"]}


def test_folder_problems_are_one_line(run_suite, tmp_path):
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-migrations", str(tmp_path / "nowhere"))
    assert run.exit_code == 4, run.output
    assert f"migration folder {tmp_path / 'nowhere'} does not exist" in run.output and "Traceback" not in run.output
    shutil.copytree(reference.MIGRATIONS_DIR, tmp_path / "release")
    config = tmp_path / "extra.toml"
    config.write_text('[migration]\nfolder = "release"\nextra_sql = ["missing.sql"]\n')
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-config", str(config))
    assert run.exit_code == 4 and "migration.extra_sql: missing.sql is not a file inside" in run.output, run.output
    config.write_text('[migration]\nfolder = "release"\nextra_folders = ["release"]\n')  # Prisma reads one folder
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-config", str(config))
    assert run.exit_code == 4 and "extra_folders: prisma reads one migrations folder" in run.output, run.output
    (tmp_path / "told.json").write_text("{}")
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "demo", "--postdeploy-rolled-back", str(tmp_path / "told.json"))
    assert run.exit_code == 4 and f"--postdeploy-rolled-back {tmp_path / 'told.json'}: not a file written by --postdeploy-target rehearsal" \
        in run.output and "Traceback" not in run.output, run.output


def test_without_a_folder_the_release_criteria_are_not_applicable(server, healthy_url, run_suite, tmp_path):
    config = tmp_path / "no-release.toml"
    config.write_text(server.backup_config)
    run = run_suite("-m", "migration", "--postdeploy-config", str(config), database_url=healthy_url)
    assert run.exit_code == PARTIAL_EXIT, run.output
    assert run.outcomes("not applicable") == {"test_applied_migrations_match_release", "test_schema_matches_release"}
    assert "2 not applicable" in run.output.rstrip().splitlines()[-1]


def test_after_migrate_steps_sql_files_and_commands(server, tmp_path):
    from postdeploy.migration.rehearse import run_step

    url = server.create_database("steps")
    (tmp_path / "make.sql").write_text("CREATE TABLE made (id int);")
    made = run_step("make.sql", url, tmp_path)
    assert made.error == "" and made.strongest_lock == "AccessExclusiveLock on made"
    (tmp_path / "alter.sql").write_text("ALTER TABLE made ADD COLUMN v int;")
    assert run_step("alter.sql", url, tmp_path).strongest_lock == "AccessExclusiveLock on made"
    # A command's own sessions are sampled too (all but the sampler's: the server is a throwaway one).
    command = f"{sys.executable} -c \"import os, time, psycopg; c = psycopg.connect(os.environ['DATABASE_URL']);" \
              " c.execute('INSERT INTO made VALUES (1)'); time.sleep(1); c.commit()\""
    inserted = run_step(command, url, tmp_path)
    assert inserted.error == "" and inserted.strongest_lock == "RowExclusiveLock on made"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM made").fetchone()[0] == 1
    failed = run_step(f"{sys.executable} -c \"raise SystemExit('backfill error: no such table')\"", url, tmp_path)
    assert failed.error == "exit status 1: backfill error: no such table"
    assert "No such file" in run_step("missing.sql", url, tmp_path).error
    (tmp_path / "typo.sql").write_text("DROP TABLE made_typo;")
    assert run_step("typo.sql", url, tmp_path).error == '[42P01] table "made_typo" does not exist'


EXTENSIONS = {
    "1_init": 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\nCREATE EXTENSION IF NOT EXISTS pgcrypto;\n'
              'CREATE TABLE "Tenant" (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),'
              ' secret bytea NOT NULL DEFAULT gen_random_bytes(16));\n',
}


def test_an_extension_the_embedded_server_lacks_is_built_on_the_machines_postgresql(run_suite, tmp_path):
    """uuid-ossp and pgcrypto are not in the embedded wheel: by default the release is built on this
    machine's own PostgreSQL instead, so the extension alone never fails the schema criterion."""
    from postdeploy.scratch.local import LocalPostgres, machine_binaries, server_version

    machine = machine_binaries()
    if machine is None:
        pytest.skip("no PostgreSQL server binaries on this machine (Debian: postgresql)")
    target = LocalPostgres(machine)  # a target that has the extensions, as production has
    try:
        url = target.create_database("tenants")
        folder = make_release(tmp_path / "release", EXTENSIONS)
        assert [r.error for r in deploy(url, load_release(folder))] == [""]
        env = {"POSTDEPLOY_CACHE_DIR": str(tmp_path / "cache")}

        def schema_criterion(scratch_server: str):
            config = tmp_path / f"{scratch_server.strip('/').replace('/', '-')}.toml"
            config.write_text(f'[migration]\nfolder = "release"\nrequired = ["init"]\nscratch_server = "{scratch_server}"\n')
            run = run_suite("-m", "post_deploy", "-k", "test_schema_matches_release", "--postdeploy-config", str(config),
                            database_url=url, env=env, reports=f"reports-{config.stem}")
            (criterion,) = run.selected
            return run, criterion

        run, criterion = schema_criterion("auto")
        assert criterion["outcome"] == "passed", run.output
        version = ".".join(map(str, server_version(machine)))
        assert f"built on PostgreSQL {version} from {machine} (the embedded server lacks uuid-ossp)" in criterion["wanted"]

        run, criterion = schema_criterion("embedded")
        assert run.exit_code == 1 and criterion["outcome"] == "failed", run.output
        assert 'extension "uuid-ossp" is not available' in criterion["observed"]
        assert 'set [migration] scratch_server = "auto"' in criterion["observed"], criterion["observed"]

        run, criterion = schema_criterion(str(machine))
        assert criterion["outcome"] == "passed" and f"built on PostgreSQL {version} from {machine} in" in criterion["wanted"]

        config = tmp_path / "wrong.toml"
        config.write_text('[migration]\nscratch_server = "no-such-bin"\n')
        run = run_suite("-m", "post_deploy", "--postdeploy-config", str(config), database_url=url, reports="wrong")
        assert run.exit_code == 4 and f"{tmp_path / 'no-such-bin'} is not a PostgreSQL bin folder" in run.output, run.output
        assert "Traceback" not in run.output
    finally:
        target.stop()
