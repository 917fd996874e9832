"""Each installable migration tool, for real: our own small project per tool (tests/migrations/)
is applied by the tool itself, `postdeploy init` names the tool, the healthy copy passes the
history criteria, and each planted fault fails its criterion naming the migration.

The Node tools are installed once per machine into a cache outside the checkout
($POSTDEPLOY_TOOLS_CACHE, else ~/.cache/postdeploy-tools), Liquibase with them (its npm package
ships the whole distribution, run by the machine's Java); alembic and Django come with the
`[test]` extra; sqitch and ActiveRecord (Rails' migration engine) are Debian's (`.ci/run`
installs them)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from postdeploy.scratch.relay import tcp_url
from tests.test_rehearsal import dump_bin  # noqa: F401  (a fixture: the server's own pg_dump)
from tests.conftest import EMBEDDED_ONLY
from postdeploy.migration.status import compare
from postdeploy.migration.tools import READERS, detect
from postdeploy.reference.backups import demo_backups

PROJECTS = Path(__file__).resolve().parent / "migrations"
TOOLS_CACHE = Path(os.environ.get("POSTDEPLOY_TOOLS_CACHE") or Path.home() / ".cache" / "postdeploy-tools")
NPM_PACKAGES = ("drizzle-kit@0.31", "drizzle-orm@0.45", "pg@8", "knex@3", "typeorm@1", "ts-node@10", "typescript@5",
                "sequelize@6", "sequelize-cli@6", "node-pg-migrate@9", "dbmate@2", "liquibase@4.28")
APPLIED = "test_applied_migrations_match_release"
HISTORY_CRITERIA = ("test_no_failed_migration", "test_required_migrations_applied", APPLIED)
SCHEMA_CRITERION = "test_schema_matches_release"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The Node tools, installed once per machine (one installer at a time)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: drizzle-kit, knex, typeorm, sequelize-cli, node-pg-migrate, dbmate and"
                    " liquibase cannot be installed (install Node.js 20 with npm)")
    TOOLS_CACHE.mkdir(parents=True, exist_ok=True)
    marker = TOOLS_CACHE / "installed.json"
    with (TOOLS_CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.is_file() or json.loads(marker.read_text()) != list(NPM_PACKAGES):
            done = subprocess.run(["npm", "install", "--prefix", str(TOOLS_CACHE), "--no-audit", "--no-fund",
                                   *NPM_PACKAGES], capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.skip(f"npm install of the Node migration tools failed: {done.stderr.strip()[-300:]}")
            marker.write_text(json.dumps(list(NPM_PACKAGES)))
    return TOOLS_CACHE / "node_modules"


def _bump(path: Path) -> Path:
    """A copy of a migration file one version later (its number + 1, in its name and its text),
    never applied: the release has a migration the database has not."""
    number = re.match(r"\d+", path.name).group()
    later = str(int(number) + 1).zfill(len(number))
    copy = path.with_name(later + path.name[len(number):])
    copy.write_text(path.read_text().replace(number, later))
    return copy


@dataclass(frozen=True)
class Tool:
    name: str
    folder: str  # the release folder, inside the project
    command: Callable[[str, Path], tuple[list[str], dict[str, str]]]  # (url, node_modules) -> argv, environment
    node: bool = True
    program: str = ""  # a program the tool needs on the PATH, and where it comes from (skipped without it)
    install: str = ""
    checksums: bool = False  # the tool records one: an edited migration is caught
    migrations: str = r"\d+[-_].+"  # the migration files of the folder, in order
    failed: str = ""  # SQL that leaves what the tool leaves when a run dies midway ("": the tool leaves nothing)
    lock: str = ""  # how the failed-migration criterion names it
    forget: str = ""  # SQL deleting the history's row of our second migration (a deleted history row)
    pending_builds: bool = True  # the migration add_pending writes changes the schema (a copy of the last, one version on)
    items: str = "items"  # the table our second migration creates
    extra: dict[str, str] = field(default_factory=dict)

    def files(self, project: Path) -> list[Path]:
        return sorted(p for p in (project / self.folder).iterdir() if re.fullmatch(self.migrations, p.name))

    def add_pending(self, project: Path) -> str:
        """A new migration in the release, never applied; its name as the release names it."""
        return _bump(self.files(project)[-1]).name

    def drop_last(self, project: Path) -> str:
        """The newest applied migration taken out of the release; its name as the history records it."""
        last = self.files(project)[-1]
        last.unlink()
        return last.name

    def edit_first(self, project: Path) -> str:
        first = self.files(project)[0]
        first.write_text(first.read_text() + "\n-- edited after it was applied\n")
        return first.name

    def die_midway(self, project: Path, url: str, modules: Path | None) -> None:
        """Leave in the database what a run killed midway leaves."""
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(self.failed)


def _bin(name: str) -> Callable[[str, Path], tuple[list[str], dict[str, str]]]:
    return lambda url, modules: ([str(modules / ".bin" / name), *TOOL_ARGS[name]], {})


TOOL_ARGS = {"knex": ["migrate:latest"], "drizzle-kit": ["migrate"], "node-pg-migrate": ["up"]}


class Drizzle(Tool):
    """The journal names the migrations: a new one is a journal entry, a dropped one leaves it."""

    def _journal(self, project: Path) -> tuple[Path, dict]:
        path = project / self.folder / "meta" / "_journal.json"
        return path, json.loads(path.read_text())

    def add_pending(self, project: Path) -> str:
        path, journal = self._journal(project)
        last = journal["entries"][-1]
        tag = "0002_more"
        (project / self.folder / f"{tag}.sql").write_text("CREATE TABLE more (id int);\n")
        journal["entries"].append({**last, "idx": last["idx"] + 1, "when": last["when"] + 1000, "tag": tag})
        path.write_text(json.dumps(journal))
        return tag

    def drop_last(self, project: Path) -> str:
        path, journal = self._journal(project)
        last = journal["entries"].pop()
        path.write_text(json.dumps(journal))
        (project / self.folder / f"{last['tag']}.sql").unlink()
        return str(last["when"])  # the history knows it only by its time

    def edit_first(self, project: Path) -> str:
        first = project / self.folder / "0000_organizations.sql"
        first.write_text(first.read_text() + "\n-- edited after it was applied\n")
        return "0000_organizations"


class TypeOrm(Tool):
    def add_pending(self, project: Path) -> str:
        return re.search(r"class (\w+)", _bump(self.files(project)[-1]).read_text()).group(1)

    def drop_last(self, project: Path) -> str:
        last = self.files(project)[-1]
        name = re.search(r"class (\w+)", last.read_text()).group(1)
        last.unlink()
        return name


class Stem(Tool):
    """node-pg-migrate, dbmate, Rails: the migration is named by its file without the extension."""

    def add_pending(self, project: Path) -> str:
        return super().add_pending(project).split(".", 1)[0]

    def drop_last(self, project: Path) -> str:
        name = super().drop_last(project).split(".", 1)[0]
        return name if self.name not in ("dbmate", "rails") else name.split("_", 1)[0]  # they record the version only


class Rails(Stem):
    def add_pending(self, project: Path) -> str:
        """A migration class of its own: ActiveRecord refuses two migrations of one class name."""
        (project / self.folder / "20240401000000_create_more.rb").write_text(
            "class CreateMore < ActiveRecord::Migration[6.1]\n  def change\n    create_table :more\n  end\nend\n")
        return "20240401000000_create_more"

    def fail(self, project: Path, url: str, modules: Path | None) -> tuple[str, set[str]]:
        """A migration that dies after creating a table: Rails keeps no failed state, and its
        transaction is rolled back whole, so nothing is left behind. Only pending, never failed;
        the release it belongs to cannot be built."""
        (project / self.folder / "20240501000000_break_things.rb").write_text(
            "class BreakThings < ActiveRecord::Migration[6.1]\n  def change\n    create_table :half_done\n"
            '    execute "SELECT no_such_function()"\n  end\nend\n')
        with pytest.raises(AssertionError, match="rails failed"):
            _apply(self, project, url, modules)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        return "20240501000000_break_things", {APPLIED, SCHEMA_CRITERION}


class Alembic(Tool):
    def add_pending(self, project: Path) -> str:
        (project / self.folder / "versions" / "c3_more.py").write_text(
            'revision = "c3d4e5f6a1b2"\ndown_revision = "b2c3d4e5f6a1"\n\n\ndef upgrade():\n    pass\n')
        return "c3d4e5f6a1b2"

    def drop_last(self, project: Path) -> str:
        (project / self.folder / "versions" / "b2_items.py").unlink()
        return "b2c3d4e5f6a1"  # the head the database records, unknown to the release


class Django(Tool):
    def files(self, project: Path) -> list[Path]:
        return sorted((project / "inventory" / "migrations").glob("0*.py"))

    def add_pending(self, project: Path) -> str:
        return "inventory." + _bump(self.files(project)[-1]).stem

    def drop_last(self, project: Path) -> str:
        return "inventory." + super().drop_last(project).removesuffix(".py")


class Sqitch(Tool):
    def _plan(self, project: Path, change: str, script: str) -> None:
        (project / "deploy" / f"{change}.sql").write_text(script)
        with (project / "sqitch.plan").open("a") as plan:
            plan.write(f"{change} 2024-03-01T00:00:00Z Our Tests <tests@example.invalid> # {change}\n")

    def add_pending(self, project: Path) -> str:
        self._plan(project, "more", "CREATE TABLE more (id int);\n")
        return "more"

    def drop_last(self, project: Path) -> str:
        plan = project / "sqitch.plan"
        plan.write_text("".join(line for line in plan.read_text().splitlines(True) if not line.startswith("items ")))
        return "items"

    def edit_first(self, project: Path) -> str:
        first = project / "deploy" / "organizations.sql"
        first.write_text(first.read_text() + "-- edited after it was applied\n")
        return "organizations"

    def fail(self, project: Path, url: str, modules: Path | None) -> tuple[str, set[str]]:
        """A change whose deploy fails: sqitch records a fail event for it. The failed change is the
        release's: not applied as released either; the release builds a broken schema."""
        self._plan(project, "broken", "SELECT no_such_function();\n")
        with pytest.raises(AssertionError, match="sqitch failed"):
            _apply(self, project, url, modules)
        return "broken", {"test_no_failed_migration", APPLIED, SCHEMA_CRITERION}


class Liquibase(Tool):
    """One formatted-SQL changelog, db/changelog.sql: a migration is a changeset, recorded as
    `changelog.sql::<id>::<author>`."""

    def _changelog(self, project: Path) -> Path:
        return project / self.folder / "changelog.sql"

    def _append(self, project: Path, changeset: str) -> None:
        with self._changelog(project).open("a") as changelog:
            changelog.write(changeset)

    def add_pending(self, project: Path) -> str:
        self._append(project, "\n--changeset ana:4\nCREATE TABLE more (id int);\n")
        return "changelog.sql::4::ana"

    def drop_last(self, project: Path) -> str:
        path = self._changelog(project)
        text = path.read_bytes()  # as bytes: a changeset of ours has CRLF line endings
        last = text.rindex(b"--changeset ")
        path.write_bytes(text[:last])
        author, id_ = re.match(rb"--changeset (\w+):(\w+)", text[last:]).groups()
        return f"changelog.sql::{id_.decode()}::{author.decode()}"

    def edit_first(self, project: Path) -> str:
        path = self._changelog(project)
        path.write_bytes(path.read_bytes().replace(b"each tenant is one row", b"one row per tenant", 1))
        return "changelog.sql::1::ana"

    def die_midway(self, project: Path, url: str, modules: Path | None) -> None:
        """Liquibase killed while it runs a slow changeset of the next release: the lock it took,
        and committed, before its first changeset stays held; the slow changeset is not recorded."""
        slow = project.parent / "slow"
        shutil.copytree(project, slow)
        self._append(slow, "\n--changeset ana:slow\nSELECT pg_sleep(120);\n")
        with tcp_url(url) as reachable:
            argv, _ = self.command(reachable, modules or Path())
            # Its own session: the shell and the java it starts are killed together, by the group's id.
            run = subprocess.Popen(argv, cwd=slow, env={**os.environ, "DATABASE_URL": reachable}, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                said = []
                for line in run.stdout:
                    said.append(line)
                    if "Running Changeset: db/changelog.sql::slow::ana" in line:
                        break
                else:
                    pytest.fail(f"liquibase never ran the slow changeset: {''.join(said)[-2000:]}")
            finally:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
                run.stdout.close()

    def fail(self, project: Path, url: str, modules: Path | None) -> tuple[str, set[str]]:
        """A changeset that fails: Liquibase stops, rolls it back and records nothing for it (it
        never writes a FAILED row, nor one for a failOnError:false changeset). It is the release's,
        so it is pending, and the release builds no schema; nothing says a run failed."""
        self._append(project, "\n--changeset ana:broken\nSELECT no_such_function();\n")
        with pytest.raises(AssertionError, match="liquibase failed"):
            _apply(self, project, url, modules)
        return "changelog.sql::broken::ana", {APPLIED, SCHEMA_CRITERION}


def _sqitch(url: str, modules: Path) -> tuple[list[str], dict[str, str]]:
    parts = urlsplit(url)
    host = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("host") or parts.hostname
    env = {"PGHOST": host, "PGPORT": str(parts.port or 5432), "PGUSER": parts.username or "postgres"}
    return ["sqitch", "deploy", f"db:pg:{parts.path.lstrip('/')}"], env


def _activerecord_missing() -> str:
    """Why our Rails project cannot be migrated here; "" when ActiveRecord can."""
    if shutil.which("ruby") is None or shutil.which("rake") is None:
        return "ruby or rake is not installed (Debian: apt-get install ruby-activerecord ruby-pg; .ci/run does)"
    done = subprocess.run(["ruby", "-e", 'require "active_record"; require "pg"'], capture_output=True, text=True,
                          timeout=60)
    if done.returncode == 0:
        return ""
    return ("ActiveRecord or its PostgreSQL driver is not installed (Debian: apt-get install ruby-activerecord ruby-pg;"
            f" .ci/run does): {done.stderr.strip()[-300:]}")


def _liquibase(url: str, modules: Path) -> tuple[list[str], dict[str, str]]:
    # Liquibase takes a JDBC URL and the user apart: the shell cuts both from DATABASE_URL
    # (postgresql://user@127.0.0.1:port/db), so one command serves our run and [migration] apply.
    script = 'user=${DATABASE_URL%%@*}; exec "$0" update --url="jdbc:postgresql://${DATABASE_URL#*@}" --username="${user##*/}"'
    return ["sh", "-c", script, str(modules / "liquibase" / "dist" / "liquibase" / "liquibase")], {}


def _newest(table: str, order: str = "id") -> str:
    return f"DELETE FROM {table} WHERE {order} = (SELECT max({order}) FROM {table})"


TOOLS = {t.name: t for t in (
    Tool("knex", "migrations", _bin("knex"), failed="UPDATE knex_migrations_lock SET is_locked = 1", lock="is_locked",
         forget=_newest("knex_migrations")),
    Drizzle("drizzle", "drizzle", _bin("drizzle-kit"), checksums=True, forget=_newest("drizzle.__drizzle_migrations")),
    TypeOrm("typeorm", "migrations", lambda url, m: ([str(m / ".bin" / "typeorm-ts-node-commonjs"), "migration:run",
                                                      "-d", "data-source.ts"], {"TS_NODE_TRANSPILE_ONLY": "1"}),
            forget=_newest("migrations")),
    Tool("sequelize", "migrations", lambda url, m: ([str(m / ".bin" / "sequelize-cli"), "db:migrate"], {}),
         forget=_newest('"SequelizeMeta"', "name"), pending_builds=False),  # its createTable is IF NOT EXISTS
    Stem("node-pg-migrate", "migrations", _bin("node-pg-migrate"), forget=_newest("pgmigrations")),
    Stem("dbmate", "db/migrations", lambda url, m: ([str(m / ".bin" / "dbmate"), "--url",
                                                     url + ("&" if "?" in url else "?") + "sslmode=disable",
                                                     "--no-dump-schema", "up"], {}),
         forget=_newest("schema_migrations", "version")),
    # alembic_version keeps one row, the head: deleting it forgets every revision.
    Alembic("alembic", "alembic", lambda url, m: ([sys.executable, "-m", "alembic", "upgrade", "head"], {}), node=False,
            forget="DELETE FROM alembic_version", pending_builds=False),
    Django("django", ".", lambda url, m: ([sys.executable, "manage.py", "migrate"], {}), node=False,
           items="inventory_item", forget="DELETE FROM django_migrations WHERE app = 'inventory' AND name = '0002_items'"),
    Sqitch("sqitch", ".", _sqitch, node=False, program="sqitch", install="Debian: apt-get install sqitch; .ci/run does",
           checksums=True, forget="DELETE FROM sqitch.changes WHERE change = 'items'"),
    Liquibase("liquibase", "db", _liquibase, program="java", install="Liquibase runs on Java 11 or later: Debian's"
              " default-jre-headless; .ci/run installs it", checksums=True, forget=_newest("databasechangelog", "orderexecuted"),
              lock="databasechangeloglock locked by"),
    # ActiveRecord itself, as `bin/rails db:migrate` runs it (our Rakefile); it keeps no checksum nor failed state.
    Rails("rails", "db/migrate", lambda url, m: (["rake", "db:migrate"], {}), node=False,
          forget=_newest("schema_migrations", "version")),
)}


def _apply(tool: Tool, project: Path, url: str, modules: Path | None, **more_env: str) -> None:
    with tcp_url(url) as url:  # as the suite gives it to [migration] apply
        argv, extra = tool.command(url, modules or Path())
        env = {**os.environ, "DATABASE_URL": url, **extra, **more_env}
        if modules is not None:
            env["NODE_PATH"] = str(modules)  # our projects have no node_modules of their own
        done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{tool.name} failed: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def _criteria(run_suite, project: Path, url: str, reports: str, env: dict[str, str] | None = None):
    run = run_suite("-m", "post_deploy", "-k", " or ".join((*HISTORY_CRITERIA, SCHEMA_CRITERION)), "--postdeploy-config",
                    str(project / "postdeploy.toml"), database_url=url, reports=f"reports-{reports}", env=env)
    return run, {c["name"]: c for c in run.signoff["criteria"]}


def _text(criterion: dict) -> str:
    return json.dumps(criterion)


def _failed(criteria: dict[str, dict]) -> set[str]:
    """The history and schema criteria that failed (the others are left out of the run)."""
    return {n for n in (*HISTORY_CRITERIA, SCHEMA_CRITERION) if criteria[n]["outcome"] == "failed"}


@pytest.mark.parametrize("name", list(TOOLS))
def test_a_real_tool_is_read_and_its_faults_caught(name, server, tmp_path, run_suite, request):
    tool = TOOLS[name]
    if tool.program and shutil.which(tool.program) is None:
        pytest.skip(f"{tool.program} is not installed ({tool.install})")
    if tool.name == "rails" and (missing := _activerecord_missing()):
        pytest.skip(missing)
    modules = request.getfixturevalue("node_modules") if tool.node else None
    project = tmp_path / "project"
    shutil.copytree(PROJECTS / name, project)
    url = server.create_database(name.replace("-", "_"))
    _apply(tool, project, url, modules)
    if "schema_migrations" in READERS[name].tables:  # three tools name their table so: one owner, told apart
        with psycopg.connect(url) as conn:
            assert [r.tool for r in detect(conn, "public")] == [name]

    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    written = (project / "postdeploy.toml").read_text()
    assert f'tool = "{name}"' in written, written
    assert f"{name} migration folder" in done.stdout, done.stdout

    # The release's schema: plain SQL is applied by the scratch server, code by the tool's own
    # command ([migration] apply, the command we migrated with) on a throwaway database.
    env = {"NODE_PATH": str(modules)} if modules else {}
    if not READERS[name].plain_sql:
        argv, extra = tool.command("", modules or Path())  # the URL comes from DATABASE_URL
        env |= extra
        config = project / "postdeploy.toml"
        config.write_text(config.read_text().replace("[migration]\n", f"[migration]\napply = {json.dumps(shlex.join(argv))}\n", 1))
    run, criteria = _criteria(run_suite, project, url, "healthy", env)
    wanted = (*HISTORY_CRITERIA, SCHEMA_CRITERION)
    assert {n: criteria[n]["outcome"] for n in wanted} == dict.fromkeys(wanted, "passed"), run.output

    hotfix = server.create_database(f"{name.replace('-', '_')}_hotfix", template=urlsplit(url).path.lstrip("/").removeprefix(server.prefix))
    with psycopg.connect(hotfix, autocommit=True) as conn:  # a column added by hand, outside any migration
        conn.execute(f"ALTER TABLE {tool.items} ADD COLUMN hotfix integer")
    run, criteria = _criteria(run_suite, project, hotfix, "hotfix", env)
    assert _failed(criteria) == {SCHEMA_CRITERION}, run.output
    assert f"{tool.items}.hotfix" in _text(criteria[SCHEMA_CRITERION]), run.output

    # Each fault fails exactly its criterion; a migration pending or taken out of the release
    # changes what the release builds too, and a failed or forgotten one is not applied as released
    # (as the reference's catalogue has it: release_faults.SEEN_BY_RELEASE).
    faults: list[tuple[str, Callable[[Path], str], str, set[str]]] = [
        ("pending", tool.add_pending, "pending: never applied", {APPLIED} | ({SCHEMA_CRITERION} if tool.pending_builds else set())),
        ("unknown", tool.drop_last, "no migration in the release", {APPLIED, SCHEMA_CRITERION}),
    ]
    if tool.checksums:
        faults.append(("edited", tool.edit_first, "modified after it was applied", {APPLIED}))
    for fault, plant, problem, wanted_failed in faults:
        copy = tmp_path / fault
        shutil.copytree(project, copy)
        migration = plant(copy)
        run, criteria = _criteria(run_suite, copy, url, fault, env)
        assert _failed(criteria) == wanted_failed, (fault, run.output)
        assert migration in _text(criteria[APPLIED]), (fault, migration, run.output)
        assert problem in run.output, (fault, run.output)

    # A deleted history row: the required migration is missing, and the release's is pending.
    forgotten = server.create_database(f"{name.replace('-', '_')}_forgot", template=urlsplit(url).path.lstrip("/").removeprefix(server.prefix))
    with psycopg.connect(forgotten, autocommit=True) as conn:
        conn.execute(tool.forget)
    run, criteria = _criteria(run_suite, project, forgotten, "forgotten", env)
    assert _failed(criteria) == {"test_required_migrations_applied", APPLIED}, run.output
    assert "pending: never applied" in _text(criteria[APPLIED]), run.output

    if tool.lock:  # what the tool leaves behind when its run dies midway: a lock, no migration row
        locked = server.create_database(f"{name.replace('-', '_')}_locked", template=urlsplit(url).path.lstrip("/").removeprefix(server.prefix))
        tool.die_midway(project, locked, modules)
        run, criteria = _criteria(run_suite, project, locked, "locked", env)
        assert _failed(criteria) == {"test_no_failed_migration"}, run.output
        assert tool.lock in _text(criteria["test_no_failed_migration"]), run.output

    if isinstance(tool, (Sqitch, Liquibase, Rails)):  # the real tool fails a change of the release
        broken, wanted_failed = tool.fail(project, url, modules)
        run, criteria = _criteria(run_suite, project, url, "failed", env)
        assert _failed(criteria) == wanted_failed, run.output
        for criterion in wanted_failed & set(HISTORY_CRITERIA):
            assert broken in _text(criteria[criterion]), (criterion, run.output)
        if "test_no_failed_migration" not in wanted_failed:  # a tool that records no failure: only pending
            assert "pending: never applied" in _text(criteria[APPLIED]), run.output
        if isinstance(tool, Rails):  # the server's own error is named, not only rake's task trace after it
            assert "PG::UndefinedFunction" in _text(criteria[SCHEMA_CRITERION]), _text(criteria[SCHEMA_CRITERION])


# A second changelog of ours, formatted as Liquibase allows: a byte-order mark, a quoted author and
# id, a comment after a statement, a line of blanks, two statements on a line, a dollar-quoted
# body with a tab, a rollback line, lines hidden by --ignoreLines, letters beyond ASCII.
LIQUIBASE_EDGES = (
    "\ufeff--liquibase formatted sql\n\n"
    '--changeset "ana maria":"edge 1"\n'
    "CREATE TABLE gadgets (id int);   -- a comment after the statement\n   \n"
    "INSERT INTO gadgets VALUES (1);INSERT INTO gadgets VALUES (2);\n\n"
    "--ChangeSet bo:edge-2 splitStatements:false\n"
    "CREATE FUNCTION gadget_count() RETURNS bigint LANGUAGE plpgsql AS $$\nBEGIN\n\tRETURN (SELECT count(*) FROM gadgets);\nEND\n$$;\n"
    "--rollback DROP FUNCTION gadget_count();\n\n"
    "--changeset bo:edge-3\n"
    "--ignoreLines:start\nLiquibase never reads these lines\n--ignoreLines:end\n--ignoreLines:1\nnor this one\n"
    "COMMENT ON TABLE gadgets IS 'caf\u00e9 \u00fcn\u00efcode';\n"
)


@EMBEDDED_ONLY
def test_liquibase_md5sum_is_the_one_liquibase_writes(server, tmp_path, node_modules, run_suite):
    """Each changeset's md5sum as we compute it is the one Liquibase itself wrote, for our
    project's changelog (comments, blank lines, a tab, CRLF, several statements, rollback lines and
    block, a precondition) and for LIQUIBASE_EDGES. An edit Liquibase rejects (a comment reworded)
    we call edited; one it accepts (the blanks of a line) we do not. An older md5sum is not compared."""
    tool = TOOLS["liquibase"]
    if shutil.which(tool.program) is None:
        pytest.skip(f"{tool.program} is not installed ({tool.install})")
    project = tmp_path / "project"
    shutil.copytree(PROJECTS / "liquibase", project)
    edges = project / "db" / "edges.sql"
    edges.write_bytes(LIQUIBASE_EDGES.encode())
    url = server.create_database("liquibase_md5")
    _apply(tool, project, url, node_modules)
    _apply(tool, project, url, node_modules, LIQUIBASE_COMMAND_CHANGELOG_FILE="db/edges.sql")

    reader = READERS["liquibase"]

    def problems() -> dict[str, str]:
        with psycopg.connect(url) as conn:
            history = reader.read(conn, "public", None)
        return {p.migration: p.problem for p in compare(history, reader.release(project / "db"))}

    with psycopg.connect(url) as conn:
        written = dict(conn.execute("SELECT id, md5sum FROM databasechangelog").fetchall())
    ours = {m.name.split("::")[1]: m.checksum for m in reader.release(project / "db").migrations}
    assert len(written) == 6 and all(v.startswith("9:") for v in written.values()), written
    assert ours == written
    assert problems() == {}

    # The blanks of a line: Liquibase runs nothing and fails nothing, and nothing is edited.
    edges.write_bytes(LIQUIBASE_EDGES.replace("(id int);   --", "( id  int );\t--").encode())
    _apply(tool, project, url, node_modules, LIQUIBASE_COMMAND_CHANGELOG_FILE="db/edges.sql")
    assert problems() == {}
    # A reworded comment: Liquibase refuses to run (a changeset's check sum changed), and we name it.
    edges.write_bytes(LIQUIBASE_EDGES.replace("a comment after", "a remark after").encode())
    with pytest.raises(AssertionError, match="check ?sum"):
        _apply(tool, project, url, node_modules, LIQUIBASE_COMMAND_CHANGELOG_FILE="db/edges.sql")
    assert problems() == {"edges.sql::edge 1::ana maria": "modified after it was applied"}

    # A row Liquibase wrote before 4.22 (`8:`) is not compared, and the criterion says so.
    edges.unlink()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM databasechangelog WHERE filename = 'db/edges.sql'")
        conn.execute("UPDATE databasechangelog SET md5sum = '8:d6bd2ad9ff4e2b2bbd2a1bfc1d8e0b1d' WHERE id = '1'")
    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    run, criteria = _criteria(run_suite, project, url, "md5-8")
    assert criteria[APPLIED]["outcome"] == "passed", run.output
    assert "checksum not compared for 1: changelog.sql::1::ana" in criteria[APPLIED]["observed"], run.output


@EMBEDDED_ONLY
def test_a_renamed_history_table_is_found_by_its_columns(server, tmp_path, run_suite, node_modules):
    """Knex's tableName: init finds the table by its columns and writes it; the criteria read it,
    and the lock knex names after it."""
    project = tmp_path / "project"
    shutil.copytree(PROJECTS / "knex", project)
    url = server.create_database("knex_renamed")
    with tcp_url(url) as reachable:
        done = subprocess.run([str(node_modules / ".bin" / "knex"), "migrate:latest"], cwd=project, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "DATABASE_URL": reachable,
                                                           "NODE_PATH": str(node_modules), "KNEX_TABLE": "app_migrations"})
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    written = (project / "postdeploy.toml").read_text()
    assert 'tool = "knex"' in written and 'table = "app_migrations"' in written, written
    run, criteria = _criteria(run_suite, project, url, "renamed")
    assert {n: criteria[n]["outcome"] for n in HISTORY_CRITERIA} == dict.fromkeys(HISTORY_CRITERIA, "passed"), run.output
    assert "2 recorded in app_migrations" in _text(criteria["test_no_failed_migration"]), run.output

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE app_migrations_lock SET is_locked = 1")
    run, criteria = _criteria(run_suite, project, url, "renamed-locked")
    assert _failed(criteria) == {"test_no_failed_migration"}, run.output
    assert "app_migrations_lock is_locked = 1" in _text(criteria["test_no_failed_migration"]), run.output


@EMBEDDED_ONLY
def test_a_rehearsal_applies_another_tools_release_with_its_own_command(server, tmp_path, run_suite, node_modules,
                                                                         short_tmp, dump_bin):
    """--postdeploy-target rehearsal on a Knex release: the newest backup restored, the pending
    migration applied by `[migration] apply` (so knex records it), the copy signed off; the
    target untouched. Without apply, a usage error says what to set."""
    project = tmp_path / "project"
    shutil.copytree(PROJECTS / "knex", project)
    newest = TOOLS["knex"].files(project)[-1]
    held = newest.rename(tmp_path / newest.name)  # production runs the release before this one
    url = server.create_database("knex_rehearsed")
    _apply(TOOLS["knex"], project, url, node_modules)
    held.rename(newest)
    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    demo_backups(url, tmp_path / "backups", bin_dir=dump_bin)
    config = project / "postdeploy.toml"
    written = config.read_text() + (f'\n[backup]\nprovider = "directory"\n\n[backup.directory]\npath = "{tmp_path / "backups"}"\n'
                                    '\n[signoff]\nrequired_areas = ["migration"]\n')
    config.write_text(written)
    env = {"TMPDIR": short_tmp, "NODE_PATH": str(node_modules)}
    args = ("-m", "post_deploy", "-k", " or ".join((*HISTORY_CRITERIA, SCHEMA_CRITERION)), "--postdeploy-target",
            "rehearsal", "--postdeploy-config", str(config))
    run = run_suite(*args, database_url=url, env=env, reports="reports-no-apply")
    assert run.exit_code == 4 and "set [migration] apply" in run.output, run.output

    command = f"{node_modules / '.bin' / 'knex'} migrate:latest"
    config.write_text(written.replace("[migration]\n", f"[migration]\napply = {json.dumps(command)}\n", 1))
    run = run_suite(*args, database_url=url, env=env, reports="reports-rehearsed")
    criteria = {c["name"]: c for c in run.signoff["criteria"]}
    wanted = (*HISTORY_CRITERIA, SCHEMA_CRITERION)
    assert {n: criteria[n]["outcome"] for n in wanted} == dict.fromkeys(wanted, "passed"), run.output
    observed = criteria[APPLIED]["observed"]
    assert f"{newest.name} (`{command}`): " in observed, observed  # the pending migration, applied and timed
    with psycopg.connect(url) as conn:  # the target is untouched: production still has the one migration
        assert conn.execute("SELECT count(*) FROM knex_migrations").fetchone()[0] == 1


# The way back for another tool than Prisma: the release's newest migration adds a column to
# organizations, and the tool's own down command takes it back. (tool -> the migration as the
# history names it, how it is written, its down, the faulty downs, the commands.)
@dataclass(frozen=True)
class WayBack:
    taken_back: str  # the release's newest migration, as the history names it
    write: Callable[[Path, str], None]  # writes it into the project, given the body of its way down
    healthy: str
    leaves_column: str  # forgets to drop what up added
    fails: str  # an error in the way down
    command: Callable[[Path], str]  # the rollback step, given node_modules
    apply: str = ""  # [migration] apply where it is not the command production ran (that one is)
    # A rollback by hand that drops the column but leaves the history saying the migration is applied.
    keeps_history: str = "ALTER TABLE organizations DROP COLUMN plan;\n"


def _knex_plan(project: Path, down: str) -> None:
    (project / "migrations" / "20240301000000_plan.js").write_text(
        'exports.up = (knex) => knex.schema.alterTable("organizations", (t) => { t.text("plan"); });\n'
        f"exports.down = {down};\n")


def _alembic_plan(project: Path, down: str) -> None:
    (project / "alembic" / "versions" / "c3_plan.py").write_text(
        'from alembic import op\n\nrevision = "c3d4e5f6a1b2"\ndown_revision = "b2c3d4e5f6a1"\n\n\n'
        'def upgrade() -> None:\n    op.execute("ALTER TABLE organizations ADD COLUMN plan text")\n\n\n'
        f"def downgrade() -> None:\n    {down}\n")


def _sqitch_plan(project: Path, down: str) -> None:
    (project / "deploy" / "plan.sql").write_text("ALTER TABLE organizations ADD COLUMN plan text;\n")
    (project / "revert" / "plan.sql").write_text(down)
    with (project / "sqitch.plan").open("a") as plan:
        plan.write("plan [items] 2024-03-01T00:00:00Z Our Tests <tests@example.invalid> # the plan column\n")


WAYS_BACK = {
    "knex": WayBack("20240301000000_plan.js", _knex_plan,
                    '(knex) => knex.schema.alterTable("organizations", (t) => { t.dropColumn("plan"); })',
                    "async () => {}", '(knex) => knex.raw("ALTER TABLE organizations DROP COLUMN planned")',
                    lambda modules: f"{modules / '.bin' / 'knex'} migrate:rollback"),
    "alembic": WayBack("c3d4e5f6a1b2", _alembic_plan, 'op.execute("ALTER TABLE organizations DROP COLUMN plan")',
                       "pass", 'op.execute("ALTER TABLE organizations DROP COLUMN planned")',
                       lambda modules: f"{sys.executable} -m alembic downgrade -1"),
    # A folder of plain SQL: the previous release is built on the scratch server, not read from the copy.
    "sqitch": WayBack("plan", _sqitch_plan, "ALTER TABLE organizations DROP COLUMN plan;\n", "SELECT 1;\n",
                      "ALTER TABLE organizations DROP COLUMN planned;\n",
                      lambda modules: 'sqitch revert -y --to @HEAD^ "db:$DATABASE_URL"',
                      apply='sqitch deploy "db:$DATABASE_URL"'),
}


def _rehearse_the_way_back(name: str, down_name: str, server, tmp_path: Path, run_suite, modules: Path | None, short_tmp: str,
                           dump_bin, *, rehearsal: str = ""):
    """Production runs our project; the release adds the plan column; the rehearsal restores the
    newest backup, applies the release with the tool's command, then the tool's own rollback."""
    tool, way = TOOLS[name], WAYS_BACK[name]
    down = way.healthy if down_name == "keeps_history" else getattr(way, down_name)
    project = tmp_path / "project"
    shutil.copytree(PROJECTS / name, project)
    url = server.create_database(f"{name}_way_back_{down_name}")
    _apply(tool, project, url, modules)
    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    way.write(project, down)  # the release: one migration more
    demo_backups(url, tmp_path / "backups", bin_dir=dump_bin)
    argv, extra = tool.command("", modules or Path())
    apply = way.apply or shlex.join(argv)
    step = way.command(modules or Path())
    if down_name == "keeps_history":
        (project / "drop_plan.sql").write_text(way.keeps_history)
        step = "drop_plan.sql"
    config = project / "postdeploy.toml"
    # Our projects are not multi-tenant applications (no index on org_id): their tenancy is declared absent.
    written = config.read_text().replace('model = "row"', 'model = "none"', 1)
    config.write_text(written.replace("[migration]\n", f"[migration]\napply = {json.dumps(apply)}\n", 1)
                      + f'\n[backup]\nprovider = "directory"\n\n[backup.directory]\npath = "{tmp_path / "backups"}"\n'
                      f"\n[rehearsal]\nrollback = [{json.dumps(step)}]\n{rehearsal}\n"
                      '\n[signoff]\nrequired_areas = ["migration"]\n')
    env = {"TMPDIR": short_tmp, **({} if way.apply else extra), **({"NODE_PATH": str(modules)} if modules else {})}
    run = run_suite("-m", "post_deploy", "--postdeploy-target", "rehearsal", "--postdeploy-config", str(config),
                    database_url=url, env=env)
    with psycopg.connect(url) as conn:  # the target is untouched: production has no plan column
        assert not conn.execute("SELECT 1 FROM information_schema.columns WHERE column_name = 'plan'").fetchall()
    criterion = next(c for c in run.signoff["criteria"] if c["name"] == "test_rollback_rehearsed")
    (section,) = run.signoff["sections"]
    return run, criterion, section


def _way_back_tools(name: str, request: pytest.FixtureRequest) -> Path | None:
    """The Node tools' folder for a Node tool; a skip when the tool's program is not installed."""
    tool = TOOLS[name]
    if tool.program and shutil.which(tool.program) is None:
        pytest.skip(f"{tool.program} is not installed ({tool.install})")
    return request.getfixturevalue("node_modules") if tool.node else None


@EMBEDDED_ONLY
@pytest.mark.parametrize("name", list(WAYS_BACK))
def test_another_tools_rollback_is_rehearsed_and_signed_off_go(name, server, tmp_path, run_suite, short_tmp, dump_bin,
                                                              request):
    """The tool's own down command takes the release back on the copy: the copy signs off GO
    against the previous release (its schema: the restored copy before the forward; its history:
    the taken-back migration gone, not pending), and the release applies again."""
    modules, way = _way_back_tools(name, request), WAYS_BACK[name]
    run, criterion, section = _rehearse_the_way_back(name, "healthy", server, tmp_path, run_suite, modules, short_tmp,
                                                     dump_bin, rehearsal="round_trip = true")
    assert criterion["outcome"] == "passed", (criterion, run.output)
    assert run.exit_code == 0 and run.signoff["verdict"] == "GO", run.output
    assert section["status"] == "GO", section
    lines = "\n".join(section["lines"])
    assert f"taking back {way.taken_back}" in lines, lines
    restored = "the previous release's schema: the restored copy before the forward"
    assert (restored in lines) is not READERS[name].plain_sql, lines  # code: its command cannot build the previous release
    assert "round trip: the release applied again (1 migration(s), 0 after_migrate step(s)) and built the schema" in lines
    assert [row["phase"] for row in section["rows"]] == ["rollback", "forward again"], section["rows"]
    copy = json.loads(next((run.folder / "rolled-back").glob("env-*/sign-off.json")).read_text())
    outcomes = {c["name"]: c for c in copy["criteria"]}
    wanted = (*HISTORY_CRITERIA, SCHEMA_CRITERION)
    assert {n: outcomes[n]["outcome"] for n in wanted} == dict.fromkeys(wanted, "passed"), copy["criteria"]
    built = outcomes[SCHEMA_CRITERION]["wanted"]
    assert (f"({restored})" in built) is not READERS[name].plain_sql, built
    assert outcomes["test_no_rows_lost"]["outcome"] == "passed", copy["criteria"]
    assert copy["verdict"] == "GO", copy["summary"]


@EMBEDDED_ONLY
@pytest.mark.parametrize("name, fault", [(n, f) for n in ("knex", "alembic") for f in ("leaves_column", "keeps_history", "fails")]
                         + [("sqitch", "leaves_column")])
def test_another_tools_faulty_rollback_is_no_go(name, fault, server, tmp_path, run_suite, short_tmp, dump_bin, request):
    """A down that forgets the column it should drop: the copy's schema criterion names it; a
    rollback that leaves the tool's history saying the migration is applied: the folder criterion
    names it (the next deploy would skip it); a down that fails: the step is named with the tool's
    error, and the copy is not signed off."""
    modules, way = _way_back_tools(name, request), WAYS_BACK[name]
    run, criterion, section = _rehearse_the_way_back(name, fault, server, tmp_path, run_suite, modules,
                                                     short_tmp, dump_bin)
    assert criterion["outcome"] == "failed" and section["status"] == "NO-GO", (criterion, run.output)
    assert run.exit_code == 1 and run.outcomes("failed") == {"test_rollback_rehearsed"}, run.output  # forward: GO
    observed = criterion["observed"]
    if fault == "leaves_column":
        assert "the rolled-back copy's sign-off is NO-GO" in observed, observed
        assert f"{SCHEMA_CRITERION}: 1 extra (column organizations.plan extra)" in observed, observed
        copy = json.loads(next((run.folder / "rolled-back").glob("env-*/sign-off.json")).read_text())
        assert {c["name"] for c in copy["criteria"] if c["outcome"] == "failed"} == {SCHEMA_CRITERION}
    elif fault == "keeps_history":
        table = READERS[name].tables[0]
        assert f"{APPLIED}: 1 differ ({way.taken_back} applied in the database after the rollback: {table} must no longer" \
               " record it as applied" in observed, observed
        copy = json.loads(next((run.folder / "rolled-back").glob("env-*/sign-off.json")).read_text())
        assert {c["name"] for c in copy["criteria"] if c["outcome"] == "failed"} == {APPLIED}
    else:
        step = way.command(modules or Path())
        assert f"rollback step {step} failed: exit status 1: " in observed, observed
        assert 'column "planned" of relation "organizations" does not exist' in observed, observed
        assert "rolled-back sign-off: not run (a rollback step failed)" in section["lines"]
        assert not (run.folder / "rolled-back").exists()


def test_an_extension_a_node_error_names_first_still_builds_on_the_machines_postgresql(tmp_path, run_suite, node_modules):
    """A Node migrate script that lets the driver's error go unhandled prints the message first,
    then the error's fields and Node's version: the missing extension is named on the first line
    only, and the release is still built on this machine's PostgreSQL."""
    from postdeploy.scratch.local import LocalPostgres, machine_binaries

    machine = machine_binaries()
    if machine is None:
        pytest.skip("no PostgreSQL server binaries on this machine (Debian: postgresql)")
    project = tmp_path / "project"
    shutil.copytree(PROJECTS / "knex", project)
    (project / "migrations" / "20240301000000_keys.js").write_text(
        "exports.up = (knex) => knex.raw('CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\"').then(() =>\n"
        "  knex.schema.createTable(\"keys\", (t) => { t.uuid(\"id\").primary().defaultTo(knex.raw(\"uuid_generate_v4()\")); }));\n"
        "exports.down = (knex) => knex.schema.dropTable(\"keys\");\n")
    (project / "migrate.js").write_text(  # no catch: Node prints the rejection whole and exits 1
        "require('knex')(require('./knexfile.js')).migrate.latest().then(() => process.exit(0));\n")
    target = LocalPostgres(machine)  # a target that has the extension, as production has
    try:
        url = target.create_database("keys")
        with tcp_url(url) as reachable:
            done = subprocess.run(["node", "migrate.js"], cwd=project, capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "DATABASE_URL": reachable, "NODE_PATH": str(node_modules)})
        assert done.returncode == 0, done.stderr
        done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=project, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})
        assert done.returncode == 0, done.stderr
        config = project / "postdeploy.toml"
        config.write_text(config.read_text().replace("[migration]\n", '[migration]\napply = "node migrate.js"\n', 1))
        env = {"NODE_PATH": str(node_modules), "POSTDEPLOY_CACHE_DIR": str(tmp_path / "cache")}
        run, criteria = _criteria(run_suite, project, url, "extension", env)
        assert criteria[SCHEMA_CRITERION]["outcome"] == "passed", run.output
        assert "(the embedded server lacks uuid-ossp)" in criteria[SCHEMA_CRITERION]["wanted"], run.output
    finally:
        target.stop()


@EMBEDDED_ONLY
def test_a_data_source_listing_two_folders_is_one_release(server, tmp_path, run_suite, node_modules):
    """A TypeORM data source listing a folder per database and a shared one: init takes the folder
    holding the applied migrations (not migration/mysql, first by name) and proposes the shared
    one as extra_folders; read together they pass, and a deleted row of the shared folder's
    migration is caught. Without extra_folders, its migration would be called unknown."""
    tool = TOOLS["typeorm"]
    project = tmp_path / "project"
    shutil.copytree(PROJECTS / "typeorm_folders", project)
    url = server.create_database("typeorm_folders")
    _apply(tool, project, url, node_modules)
    done = subprocess.run([sys.executable, "-m", "postdeploy.cli", "init"], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    config = project / "postdeploy.toml"
    written = config.read_text()
    assert 'folder = "migration/postgres"' in written and "(also: migration/mysql)" in written, written
    assert 'extra_folders = ["migration/shared"]' in written and "holds the applied WorkspaceSlugs1705000000000" in written, written

    argv, env = tool.command("", node_modules)
    env |= {"NODE_PATH": str(node_modules)}
    written = written.replace("[migration]\n", f"[migration]\napply = {json.dumps(shlex.join(argv))}\n", 1)
    config.write_text(written)
    run, criteria = _criteria(run_suite, project, url, "healthy", env)
    wanted = (*HISTORY_CRITERIA, SCHEMA_CRITERION)
    assert {n: criteria[n]["outcome"] for n in wanted} == dict.fromkeys(wanted, "passed"), run.output
    assert "the 3 migrations of postgres/ and shared/ applied" in criteria[APPLIED]["wanted"], run.output

    forgotten = server.create_database("typeorm_folders_forgot", template=urlsplit(url).path.lstrip("/").removeprefix(server.prefix))
    with psycopg.connect(forgotten, autocommit=True) as conn:
        conn.execute("DELETE FROM migrations WHERE name = 'WorkspaceSlugs1705000000000'")
    run, criteria = _criteria(run_suite, project, forgotten, "forgotten", env)
    assert _failed(criteria) == {"test_required_migrations_applied", APPLIED}, run.output
    assert "WorkspaceSlugs1705000000000" in _text(criteria[APPLIED]) and "pending: never applied" in run.output, run.output

    config.write_text(written.replace('extra_folders = ["migration/shared"]\n', ""))
    run, criteria = _criteria(run_suite, project, url, "one-folder", env)
    assert _failed(criteria) == {APPLIED}, run.output
    assert "no migration in the release" in _text(criteria[APPLIED]) and "WorkspaceSlugs1705000000000" in _text(criteria[APPLIED])
