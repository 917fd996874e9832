"""The configuration file is validated whole, with one error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from postdeploy.signoff.redact import redact, redact_url, remember_secret, remember_url
from postdeploy.signoff.settings import ConfigError, Settings, load_settings
from postdeploy.targets.env import env_target, load_environment


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postdeploy.toml"
    path.write_text(text)
    return path


def test_no_file_means_the_reference_defaults(tmp_path):
    assert load_settings(tmp_path / "postdeploy.toml", explicit=False) == Settings()


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", explicit=True)


def test_values_are_read_and_typed(tmp_path):
    settings = load_settings(
        write(tmp_path, '[tenancy]\ntables = "*"\ntenant_column = "tenant_id"\n[signoff]\nallow_writes = true\n'),
        explicit=True,
    )
    assert settings.tenancy.tables == "*"
    assert settings.tenancy.tenant_column == "tenant_id"
    assert settings.signoff.allow_writes is True
    assert settings.migration == Settings().migration


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tenancy]\ntabels = []\n", "unknown key 'tenancy.tabels'"),
        ("[tenant]\n", "unknown key 'tenant'"),
        ("[tenancy]\ntables = 3\n", "tenancy.tables must be a list of strings or a string"),
        ('[tenancy]\ntables = "all"\n', 'tenancy.tables must be a list of table names or "*"'),
        ("[database]\nlock_timeout_ms = true\n", "database.lock_timeout_ms must be an integer"),
        ('[signoff]\nrequired_areas = ["migrations"]\n', "unknown area(s) ['migrations']"),
        ("tenancy = 1\n", "tenancy must be a table"),
        ("[tenancy\n", "not valid TOML"),
        # Written but empty: never the reference deployment's names in their place.
        ("[tenancy]\n[signoff]\nallow_writes = true\n", '[tenancy] is empty: write model = "row" with organizations_table'),
        ("[migration]\n", '[migration] is empty: write tool = "..." with its folder, or tool = "none"'),
        ("[balance]\n", "[balance] is empty: write table and ledger, or enabled = false"),
        ("[monitoring]\n", "[monitoring] is empty"),
    ],
)
def test_bad_files_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), explicit=True)
    assert message in str(err.value)


def test_dotenv_is_read_the_environment_wins_and_bad_lines_are_named(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "DEFAULT_ORG_ID", "APP_URL"):
        monkeypatch.setenv(name, "")  # recorded, so what .env sets is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("DEFAULT_ORG_ID", "org_from_environment")
    env = tmp_path / ".env"
    env.write_text("# comment\nexport DATABASE_URL='postgresql://a:b@h/d'\n\nDEFAULT_ORG_ID=org_x\nAPP_URL=http://127.0.0.1:9/\n")
    load_environment(env)
    target = env_target(allow_writes=False)
    assert target.database_url == "postgresql://a:b@h/d"
    assert target.default_org_id == "org_from_environment"
    assert target.app_url == "http://127.0.0.1:9"
    env.write_text("DATABASE_URL=x\nnot a binding\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=VALUE"):
        load_environment(env)


def test_env_target_needs_a_postgres_url(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="DATABASE_URL is not set.*--postdeploy-target demo"):
        env_target(allow_writes=False)
    monkeypatch.setenv("DATABASE_URL", "mysql://u:p@h/d")
    with pytest.raises(ConfigError, match="must be a postgresql:// URL"):
        env_target(allow_writes=False)


def test_redaction_masks_passwords_tokens_and_remembered_secrets():
    remember_secret("tok-123456789")
    text = redact("postgresql://app:hunter22@db:5432/x Authorization: Bearer abcdefghijkl tok-123456789 password=pw1")
    assert "hunter22" not in text and "abcdefghijkl" not in text and "tok-123456789" not in text
    assert "pw1" not in text
    assert redact_url("postgresql://app:hunter22@db:5432/x?sslpassword=z") == "postgresql://app:***@db:5432/x"
    # Another session's SQL shown as evidence (a stuck session's query).
    assert "s3cret" not in redact("ALTER ROLE app WITH LOGIN PASSWORD 's3cret'")
    assert redact("the user or password was refused") == "the user or password was refused"


def test_redaction_masks_tls_passphrase_and_file_paths():
    """A URL's TLS parameters: the key's passphrase and every file path, also where libpq quotes them."""
    remember_url("postgresql://app@db/x?sslmode=verify-full&sslrootcert=/etc/certs/ca.pem&sslkey=/home/me/.pg/k.key"
                 "&sslcert=/home/me/.pg/c.crt&sslpassword=pass-phrase-1")
    text = redact('could not load private key file "/home/me/.pg/k.key": bad decrypt; sslpassword=other-9'
                  " sslrootcert=/else/ca.pem /etc/certs/ca.pem host=db sslkey='/q/k.key'")
    for secret in ("k.key", "pass-phrase-1", "other-9", "ca.pem"):
        assert secret not in text
    assert "bad decrypt" in text and "host=db" in text
