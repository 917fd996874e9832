"""The tools that cannot be installed here (Flyway, golang-migrate, goose) and a tool described
in postdeploy.toml: their history tables are written exactly as each tool's documentation
specifies, on a real server, and read by their readers; `postdeploy init` names each, telling
the three `schema_migrations` owners apart. Rails, applied for real by Debian's ActiveRecord 6.1
in tests/test_tools.py, is read here too, as a newer Rails (7.1) writes it; Liquibase, run for
real there too, here with the rows it documents but 4.28 never writes (FAILED, an `8:` md5sum)."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from postdeploy.migration.release import flyway_crc32
from postdeploy.migration.status import compare, uncompared
from postdeploy.migration.tools import READERS, detect, reader_for
from postdeploy.signoff.settings import MigrationSettings, load_settings

ORGANIZATIONS = "CREATE TABLE organizations (id serial PRIMARY KEY, name text NOT NULL);\n"
ITEMS = "CREATE TABLE items (id serial PRIMARY KEY, org_id integer NOT NULL REFERENCES organizations (id));\n"

# The tools' own DDL, as their documentation gives it for PostgreSQL.
FLYWAY = """CREATE TABLE flyway_schema_history (
    installed_rank integer NOT NULL PRIMARY KEY, version varchar(50), description varchar(200) NOT NULL,
    type varchar(20) NOT NULL, script varchar(1000) NOT NULL, checksum integer, installed_by varchar(100) NOT NULL,
    installed_on timestamp NOT NULL DEFAULT now(), execution_time integer NOT NULL, success boolean NOT NULL)"""
LIQUIBASE = """CREATE TABLE databasechangelog (
    id varchar(255) NOT NULL, author varchar(255) NOT NULL, filename varchar(255) NOT NULL,
    dateexecuted timestamp NOT NULL, orderexecuted integer NOT NULL, exectype varchar(10) NOT NULL,
    md5sum varchar(35), description varchar(255), comments varchar(255), tag varchar(255), liquibase varchar(20),
    contexts varchar(255), labels varchar(255), deployment_id varchar(10));
CREATE TABLE databasechangeloglock (id integer NOT NULL PRIMARY KEY, locked boolean NOT NULL, lockgranted timestamp,
    lockedby varchar(255));
INSERT INTO databasechangeloglock VALUES (1, false, NULL, NULL)"""
GOLANG_MIGRATE = "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
GOOSE = """CREATE TABLE goose_db_version (id serial NOT NULL PRIMARY KEY, version_id bigint NOT NULL,
    is_applied boolean NOT NULL, tstamp timestamp NULL DEFAULT now());
INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true)"""
RAILS = """CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);
CREATE TABLE ar_internal_metadata (key character varying NOT NULL PRIMARY KEY, value character varying,
    created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
INSERT INTO ar_internal_metadata VALUES ('environment', 'production', now(), now())"""


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _database(server, name: str, ddl: str) -> str:
    # Named apart from the real-tool tests' databases (tests/test_tools.py), which share the server.
    url = server.create_database(f"documented_{name}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ORGANIZATIONS + ITEMS)
        conn.execute(ddl)
    return url


def _problems(url: str, tool: str, folder: Path, required: tuple[str, ...] = ()) -> dict[str, str]:
    """What each history criterion would name: the release's problems (applied = release), the
    failed entries and locks (no failed migration), the required migrations missing."""
    reader = READERS[tool]
    release = reader.release(folder)
    with psycopg.connect(url, autocommit=True) as conn:
        assert [r.tool for r in detect(conn, "public")] == [tool]  # one owner, told apart
        history = reader.read(conn, "public", release)
    return {p.migration: p.problem for p in compare(history, release)} | {
        f"failed {e.name}": e.state for e in history.failed} | {f"lock {n}": lock for n, lock in enumerate(history.locks)} | {
        f"required {r}": "missing" for r in required if not any(e.applied and e.matches(r) for e in history.entries)}


@contextmanager
def _taken_out(path: Path) -> Iterator[None]:
    """The migration file out of the release for a while (an applied migration it does not know)."""
    away = path.with_name(f".{path.name}.away")
    path.rename(away)
    try:
        yield
    finally:
        away.rename(path)


def _init_names(url: str, folder: Path, tool: str) -> tuple[str, ...]:
    """init names the tool; the required migrations it wrote."""
    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=folder, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert f'tool = "{tool}"' in (folder / "postdeploy.toml").read_text(), done.stdout
    return load_settings(folder / "postdeploy.toml", explicit=True).migration.required


def test_flyway_crc32_is_over_lines_without_their_endings():
    # Flyway feeds each line, its line ending dropped, to one CRC32; the column keeps it signed.
    signed = lambda crc: crc - (1 << 32) if crc >= 1 << 31 else crc  # noqa: E731
    assert flyway_crc32(b"a\nb\r\n") == flyway_crc32(b"a\r\nb") == str(signed(zlib.crc32(b"ab")))
    assert flyway_crc32(b"\xef\xbb\xbfSELECT 1;\n") == str(signed(zlib.crc32(b"SELECT 1;")))


def test_flyway(server, tmp_path):
    folder = _write(tmp_path / "sql", {"V1__organizations.sql": ORGANIZATIONS, "V2__items.sql": ITEMS})
    (tmp_path / "flyway.conf").write_text("flyway.locations=filesystem:sql\n")
    url = _database(server, "flyway", FLYWAY)
    with psycopg.connect(url, autocommit=True) as conn:
        for rank, (version, script, text) in enumerate((("1", "V1__organizations.sql", ORGANIZATIONS),
                                                         ("2", "V2__items.sql", ITEMS)), 1):
            conn.execute("INSERT INTO flyway_schema_history VALUES (%s, %s, %s, 'SQL', %s, %s, 'postgres', now(), 4, true)",
                         (rank, version, script.split("__")[1][:-4], script, int(flyway_crc32(text.encode()))))
    assert _problems(url, "flyway", folder) == {}
    required = _init_names(url, tmp_path, "flyway")
    assert required == ("V1__organizations.sql", "V2__items.sql")
    with _taken_out(folder / "V2__items.sql"):  # applied, unknown to the release: only that is named
        assert _problems(url, "flyway", folder, required) == {
            "V2__items.sql": "applied in the database, no migration in the release"}
    (folder / "V1__organizations.sql").write_text(ORGANIZATIONS + "-- edited\n")
    (folder / "V3__more.sql").write_text("CREATE TABLE more (id int);\n")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE flyway_schema_history SET success = false WHERE version = '2'")
    assert _problems(url, "flyway", folder, required) == {
        "V1__organizations.sql": "modified after it was applied", "V2__items.sql": "failed",
        "V3__more.sql": "pending: never applied", "failed V2__items.sql": "failed", "required V2__items.sql": "missing"}
    # `flyway repair` marks a migration whose script is gone as deleted: Flyway then knows it no more.
    (folder / "V1__organizations.sql").write_text(ORGANIZATIONS)
    (folder / "V3__more.sql").unlink()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE flyway_schema_history SET success = true")
        conn.execute("INSERT INTO flyway_schema_history VALUES (3, '2', 'items', 'DELETE', 'V2__items.sql', NULL,"
                     " 'postgres', now(), 0, true)")
    with _taken_out(folder / "V2__items.sql"):
        assert _problems(url, "flyway", folder) == {}
    assert _problems(url, "flyway", folder) == {"V2__items.sql": "pending: never applied"}
    # An undo (Flyway's U2__ script) leaves V2 undone: pending again for the next migrate.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM flyway_schema_history WHERE type = 'DELETE'")
        conn.execute("INSERT INTO flyway_schema_history VALUES (3, '2', 'items', 'UNDO_SQL', 'U2__items.sql', 1,"
                     " 'postgres', now(), 0, true)")
    assert _problems(url, "flyway", folder) == {"V2__items.sql": "rolled back, never re-applied"}
    # Against the previous release (a rollback rehearsed), the undone version is taken back, not pending.
    assert _rolled_back(url, "flyway", folder, "V2__items.sql") == {}


def _rolled_back(url: str, tool: str, folder: Path, taken_back: str) -> dict[str, str]:
    """What the history criterion says of a rolled-back copy, against the previous release: the
    release without `taken_back` (as a rollback rehearsal signs it off)."""
    previous = READERS[tool].release(folder).without((taken_back,))
    with psycopg.connect(url, autocommit=True) as conn:
        history = READERS[tool].read(conn, "public", previous)
    return {p.migration: p.problem for p in compare(history, previous)}


def test_liquibase(server, tmp_path):
    changelog = "--liquibase formatted sql\n\n--changeset ana:1\n" + ORGANIZATIONS + "\n--changeset ana:2\n" + ITEMS
    folder = _write(tmp_path / "db", {"changelog.sql": changelog})
    (tmp_path / "liquibase.properties").write_text("changeLogFile=db/changelog.sql\n")
    url = _database(server, "liquibase", LIQUIBASE)
    # The md5sums Liquibase 4.28.0 wrote for this changelog (tests/test_tools.py proves ours equal its own).
    written = {"1": "9:1e1f371bdba98563bf1e90baee1d6902", "2": "9:68acd42472be3237dbb68d597f4b089d"}
    with psycopg.connect(url, autocommit=True) as conn:
        for order, (id_, md5) in enumerate(written.items(), 1):
            conn.execute("INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype,"
                         " md5sum, liquibase, deployment_id) VALUES (%s, 'ana', 'db/changelog.sql', now(), %s,"
                         " 'EXECUTED', %s, '4.28.0', '6600422434')", (id_, order, md5))
    assert _problems(url, "liquibase", folder) == {}
    required = _init_names(url, tmp_path, "liquibase")
    assert required == ("changelog.sql::1::ana", "changelog.sql::2::ana")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE databasechangeloglock SET locked = true, lockgranted = now(), lockedby = 'deploy-7'")
        conn.execute("INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype)"
                     " VALUES ('9', 'bo', 'db/hotfix.sql', now(), 3, 'EXECUTED')")
    found = _problems(url, "liquibase", folder, required)
    assert found.keys() == {"hotfix.sql::9::bo", "lock 0"}
    assert found["hotfix.sql::9::bo"] == "applied in the database, no migration in the release"
    assert "databasechangeloglock locked by deploy-7" in found["lock 0"]

    # An edited changeset: its 9: md5sum no longer matches. One recorded by Liquibase before 4.22
    # (`8:`, another normalisation) is not recomputed here, so never called edited.
    (folder / "changelog.sql").write_text(changelog.replace("name text", "title text"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM databasechangelog WHERE id = '9'")
        conn.execute("UPDATE databasechangeloglock SET locked = false")
    assert _problems(url, "liquibase", folder, required) == {"changelog.sql::1::ana": "modified after it was applied"}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE databasechangelog SET md5sum = '8:d6bd2ad9ff4e2b2bbd2a1bfc1d8e0b1d' WHERE id = '1'")
        release = READERS["liquibase"].release(folder)
        assert uncompared(READERS["liquibase"].read(conn, "public", release), release) == ["changelog.sql::1::ana"]
        # FAILED as the documentation lists it among exectype's values (4.28 itself records no failed changeset).
        conn.execute("UPDATE databasechangelog SET exectype = 'FAILED' WHERE id = '2'")
    assert _problems(url, "liquibase", folder, required) == {
        "changelog.sql::2::ana": "failed", "failed changelog.sql::2::ana": "failed", "required changelog.sql::2::ana": "missing"}

    # A changeset with changelog parameters, given at run time: its sum is not recomputed either.
    (folder / "changelog.sql").write_text(changelog + "\n--changeset ana:3\nCREATE TABLE more_${suffix} (id int);\n")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE databasechangelog SET exectype = 'EXECUTED', md5sum = %s WHERE id = '1'", (written["1"],))
        conn.execute("INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype, md5sum)"
                     " VALUES ('3', 'ana', 'db/changelog.sql', now(), 3, 'EXECUTED', '9:00000000000000000000000000000000')")
        release = READERS["liquibase"].release(folder)
        assert uncompared(READERS["liquibase"].read(conn, "public", release), release) == ["changelog.sql::3::ana"]
    assert _problems(url, "liquibase", folder, required) == {
        "changelog.sql::2::ana": "failed", "failed changelog.sql::2::ana": "failed", "required changelog.sql::2::ana": "missing"}


def test_golang_migrate(server, tmp_path):
    folder = _write(tmp_path / "migrations", {"1_organizations.up.sql": ORGANIZATIONS, "1_organizations.down.sql": "",
                                              "2_items.up.sql": ITEMS, "2_items.down.sql": ""})
    url = _database(server, "golang", GOLANG_MIGRATE + ";INSERT INTO schema_migrations VALUES (2, false)")
    assert _problems(url, "golang-migrate", folder) == {}
    required = _init_names(url, tmp_path, "golang-migrate")
    assert required == ("2_items",)  # the one row; the versions below are applied with it
    with _taken_out(folder / "2_items.up.sql"):
        assert _problems(url, "golang-migrate", folder, required) == {
            "2": "applied in the database, no migration in the release"}
    # The next release's migration stopped midway: golang-migrate records its version dirty.
    (folder / "3_more.up.sql").write_text("CREATE TABLE more (id int);\n")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET version = 3, dirty = true")
    assert _problems(url, "golang-migrate", folder, required) == {"3_more": "dirty", "failed 3_more": "dirty"}
    # A rollback rehearsed: `migrate down 1` moves the version back; one that does not leaves it applied.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET version = 3, dirty = false")
    assert _rolled_back(url, "golang-migrate", folder, "3_more") == {
        "3_more": "applied in the database after the rollback: schema_migrations must no longer record it as applied"
                  " (the tool's own way back takes it out), or the next deploy skips it"}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET version = 2")
    assert _rolled_back(url, "golang-migrate", folder, "3_more") == {}


def test_goose(server, tmp_path):
    up = "-- +goose Up\n{}-- +goose Down\nDROP TABLE {};\n"
    folder = _write(tmp_path / "migrations", {"00001_organizations.sql": up.format(ORGANIZATIONS, "organizations"),
                                              "00002_items.sql": up.format(ITEMS, "items")})
    url = _database(server, "goose", GOOSE + ";INSERT INTO goose_db_version (version_id, is_applied) VALUES (1, true), (2, true)")
    assert _problems(url, "goose", folder) == {}
    assert READERS["goose"].release(folder).migrations[0].up_script == b"\n" + ORGANIZATIONS.encode()
    required = _init_names(url, tmp_path, "goose")
    with _taken_out(folder / "00002_items.sql"):
        assert _problems(url, "goose", folder, required) == {"2": "applied in the database, no migration in the release"}
    with psycopg.connect(url, autocommit=True) as conn:  # `goose down`: a newer row says it is not applied
        conn.execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (2, false)")
    assert _problems(url, "goose", folder, required) == {"00002_items": "rolled back, never re-applied",
                                                         "required 00002_items": "missing"}
    # Against the previous release (a rollback rehearsed), the row marked not applied is the way back, named.
    assert _rolled_back(url, "goose", folder, "00002_items") == {}


def test_rails(server, tmp_path):
    rb = "class {0} < ActiveRecord::Migration[7.1]\n  def change\n  end\nend\n"
    folder = _write(tmp_path / "db" / "migrate", {"20240101000000_create_organizations.rb": rb.format("CreateOrganizations"),
                                                  "20240201000000_create_items.rb": rb.format("CreateItems")})
    url = _database(server, "rails", RAILS + ";INSERT INTO schema_migrations VALUES ('20240101000000'), ('20240201000000')")
    assert _problems(url, "rails", folder) == {}
    required = _init_names(url, tmp_path, "rails")
    with _taken_out(folder / "20240201000000_create_items.rb"):
        assert _problems(url, "rails", folder, required) == {
            "20240201000000": "applied in the database, no migration in the release"}
    with psycopg.connect(url, autocommit=True) as conn:  # a deleted history row
        conn.execute("DELETE FROM schema_migrations WHERE version = '20240201000000'")
    assert _problems(url, "rails", folder, required) == {"20240201000000_create_items": "pending: never applied",
                                                         "required 20240201000000_create_items": "missing"}


def test_dbmate_is_the_other_schema_migrations(server, tmp_path):
    url = _database(server, "dbmateish", "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY)")
    with psycopg.connect(url, autocommit=True) as conn:
        assert [r.tool for r in detect(conn, "public")] == ["dbmate"]


def test_a_custom_tool_described_in_the_file(server, tmp_path):
    folder = _write(tmp_path / "changes", {"001_organizations.sql": ORGANIZATIONS, "002_items.sql": ITEMS})
    url = _database(server, "custom", "CREATE TABLE deploy_log (change text, at timestamptz DEFAULT now(), ok boolean)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO deploy_log (change, ok) VALUES ('001_organizations', true), ('002_items', false)")
        settings = MigrationSettings(tool="custom", table="deploy_log", name_column="change", time_column="at",
                                     success_column="ok")
        reader = reader_for(settings)
        history = reader.read(conn, "public", None)
    assert [(e.name, e.state) for e in history.entries] == [("001_organizations", "applied"), ("002_items", "failed")]
    assert history.table == "deploy_log" and settings.required == ()
    assert [p.problem for p in compare(history, reader.release(folder))] == ["failed"]


def test_custom_needs_its_table_and_name_column():
    with pytest.raises(ValueError, match="name_column"):
        MigrationSettings(tool="custom")
    assert MigrationSettings(tool="knex").required == ()  # never the reference's Prisma names
    assert MigrationSettings().required == ("init", "add_organizations", "add_balance_table")


def test_a_missing_history_names_the_tool_the_database_holds(server, tmp_path, run_suite):
    """A configuration that leaves [migration] to its default (Prisma) on a goose database: the
    failure says which history is there and what to set, not only that Prisma's is missing."""
    url = _database(server, "goose_unset", GOOSE)
    config = tmp_path / "unset.toml"
    config.write_text('[tenancy]\nmodel = "none"\n')
    run = run_suite("-m", "migration", "-k", "test_no_failed_migration", "--postdeploy-config", str(config),
                    database_url=url)
    (criterion,) = run.selected
    assert criterion["outcome"] == "failed", run.output
    assert criterion["observed"] == ("prisma history table _prisma_migrations not found; the database holds the history"
                                     ' of goose (goose_db_version): set [migration] tool = "goose" (postdeploy init'
                                     " writes it)"), criterion
