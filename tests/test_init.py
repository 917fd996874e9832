"""`postdeploy init`: reads the catalog read-only, writes a commented file, never overwrites
silently, says plainly what it did not find."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from postdeploy.signoff.settings import load_settings

from conftest import EMBEDDED_ONLY


def _init(*args: str, cwd: Path, database_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "postdeploy.cli", "init", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _with_password(url: str, password: str) -> str:
    """The URL with a password (the test servers trust local logins, so it is accepted and ignored)."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def test_init_on_the_reference_reads_its_conventions(server, healthy_url, tmp_path):
    url = _with_password(healthy_url, "s3cret-pw")
    done = _init(cwd=tmp_path, database_url=url)  # --database-url defaults to DATABASE_URL
    assert done.returncode == 0, done.stderr
    path = tmp_path / "postdeploy.toml"
    assert f"wrote {path.name}: " in done.stdout
    settings = load_settings(path, explicit=True)
    assert (settings.tenancy.organizations_table, settings.tenancy.tenant_column) == ("Organization", "orgId")
    assert (settings.balance.table, settings.balance.ledger, settings.balance.key) == (
        "InventoryBalance", "StockMovement", ("itemId", "locationId"))
    assert (settings.balance.trigger, settings.balance.function) == ("stock_movement_balance", "apply_stock_movement")
    assert settings.migration.required == ("20240101000000_init", "20240215000000_add_organizations",
                                           "20240301000000_add_balance_table")
    assert settings.monitoring.reconciliation_table == "ReconciliationRun"
    # Every inferred value is preceded by its reason.
    lines = path.read_text().splitlines()
    for key in ("organizations_table", "tenant_column", "table", "ledger", "trigger", "lookup_query", "reconciliation_table"):
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
        assert lines[index - 1].startswith("# guessed: "), (key, lines[index - 1])
    assert "password" not in path.read_text()
    assert "s3cret-pw" not in path.read_text() + done.stdout + done.stderr  # the URL is redacted


def test_init_never_overwrites_without_force(server, healthy_url, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("# hand-written\n")
    done = _init("--database-url", healthy_url, "--out", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert "exists: give --force" in done.stderr and "Traceback" not in done.stderr
    assert path.read_text() == "# hand-written\n"
    assert _init("--database-url", healthy_url, "--out", str(path), "--force", cwd=tmp_path).returncode == 0
    assert "[tenancy]" in path.read_text()


def test_init_on_an_empty_database_says_tenancy_was_not_found(server, tmp_path):
    url = server.create_database("initempty")
    done = _init("--database-url", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not found, declared absent: tenancy (no tenant column, no tenant schemas)" in done.stdout
    text = (tmp_path / "postdeploy.toml").read_text()
    assert "tenancy: NOT FOUND" in text
    raw = tomllib.loads(text)
    # Absent, each by its section's own switch: never the reference deployment's names by default.
    assert raw["tenancy"] == {"model": "none"} and raw["migration"] == {"tool": "none"}
    assert raw["balance"] == {"enabled": False} and raw["monitoring"] == {"reconciliation_table": ""}


def test_init_without_a_database_is_one_line(tmp_path):
    done = _init(cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "postdeploy init: no database: give --database-url or set DATABASE_URL"
    refused = _init("--database-url", "postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    assert refused.returncode == 1 and "cannot connect" in refused.stderr and "Traceback" not in refused.stderr


@EMBEDDED_ONLY
def test_init_names_the_apply_command_from_where_the_file_is(server, tmp_path):
    """An Alembic project in a subfolder of the repository (a monorepo's service): init's example
    apply command names its alembic.ini, since apply runs from the written file's folder."""
    import shutil

    from postdeploy.scratch.relay import tcp_url

    tests = Path(__file__).resolve().parent
    shutil.copytree(tests / "migrations" / "alembic", tmp_path / "services" / "api")
    url = server.create_database("alembic_in_a_service")
    with tcp_url(url) as reachable:
        done = subprocess.run([sys.executable, "-m", "alembic", "-c", "services/api/alembic.ini", "upgrade", "head"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "DATABASE_URL": reachable})
    assert done.returncode == 0, done.stderr
    done = _init(cwd=tmp_path, database_url=url)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "postdeploy.toml").read_text()
    assert 'tool = "alembic"' in written and 'folder = "services/api/alembic"' in written, written
    assert 'For example: apply = "alembic -c services/api/alembic.ini upgrade head"' in written, written
