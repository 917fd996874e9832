"""Bad input gets one clear message, never a traceback, never a false GO; secrets never leak."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from postdeploy import reference

PASSWORD = "Vault-7c1f9e2a-secret"


def assert_one_clear_error(run, *phrases: str) -> None:
    assert run.exit_code not in (0, 5), run.output
    assert "Traceback" not in run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, run.output
    for phrase in phrases:
        assert phrase in errors[0]


def test_no_database_url_names_the_variable_and_the_demo(run_suite):
    run = run_suite("-m", "post_deploy")
    assert_one_clear_error(run, "DATABASE_URL", "--postdeploy-target demo")
    assert not any(run.report_dir.iterdir()), "nothing is written when nothing ran"


def test_unreachable_host_is_one_clear_message(run_suite):
    run = run_suite("-m", "post_deploy", database_url=f"postgresql://app:{PASSWORD}@127.0.0.1:9/inventory")
    assert_one_clear_error(run, "nothing accepts connections", "127.0.0.1:9")
    assert PASSWORD not in run.output


@pytest.fixture
def password_url(embedded) -> str:
    """The reference deployment owned by a role that must log in with a password."""
    admin = embedded.url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE pd_owner LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("CREATE DATABASE pd_secret OWNER pd_owner")
    hba = embedded.data_dir / "pg_hba.conf"
    hba.write_text("local all pd_owner scram-sha-256\n" + hba.read_text())
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    socket = embedded.url().split("host=")[1]
    url = f"postgresql://pd_owner:{quote(PASSWORD)}@/pd_secret?host={socket}"
    reference.load(url, scale=200)
    yield url
    hba.write_text(hba.read_text().replace("local all pd_owner scram-sha-256\n", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("DROP DATABASE pd_secret WITH (FORCE)")
        conn.execute("DROP ROLE pd_owner")


def test_wrong_password_is_one_clear_message(password_url, run_suite):
    wrong = password_url.replace(quote(PASSWORD), "not-the-password")
    run = run_suite("-m", "post_deploy", database_url=wrong)
    assert_one_clear_error(run, "user or password was refused")
    assert "not-the-password" not in run.output


def test_password_appears_in_no_output(password_url, embedded, run_suite):
    fault = reference.apply_fault(embedded.url("pd_secret"), "orphan_tenant_value")
    run = run_suite("-m", "post_deploy", database_url=password_url)
    assert run.signoff["verdict"] == "NO-GO"
    assert run.outcomes("failed") == set(fault.criteria)
    assert PASSWORD not in run.output
    for path in run.folder.iterdir():
        assert PASSWORD not in path.read_text(), path.name
        assert quote(PASSWORD) not in path.read_text(), path.name


def test_malformed_config_names_the_key(run_suite, tmp_path: Path):
    config = tmp_path / "staging.toml"
    config.write_text('[tenancy]\ntenant_column = "orgId"\ntabels = ["User"]\n')
    run = run_suite("-m", "post_deploy", "--postdeploy-config", str(config), database_url="postgresql://x@127.0.0.1:9/x")
    assert_one_clear_error(run, "unknown key 'tenancy.tabels'")

    config.write_text("[database]\nstatement_timeout_ms = \"soon\"\n")
    run = run_suite("-m", "post_deploy", "--postdeploy-config", str(config), database_url="postgresql://x@127.0.0.1:9/x")
    assert_one_clear_error(run, "database.statement_timeout_ms must be an integer")


def test_collect_only_needs_no_database(run_suite):
    run = run_suite("--collect-only", "-q")
    assert run.exit_code == 0, run.output
    assert "test_no_failed_migration" in run.output
