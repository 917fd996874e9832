"""The suite against a server that accepts TLS only, with a client certificate whose key is
encrypted: verify-full and require sign off; a wrong CA or host name is one line, exit 4;
no key, passphrase or certificate path in any output."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import psycopg
import pytest

from postdeploy import reference
from postdeploy.signoff.verdict import PARTIAL_EXIT  # a run narrowed by -m/-k: a partial GO at best
from tls import BINDIR, KEY_PASSWORD, TlsCluster

AREAS = "post_deploy and (balance or tenancy or migration)"


@pytest.fixture(scope="module")
def cluster() -> Iterator[TlsCluster]:
    if not (BINDIR / "initdb").exists() or shutil.which("openssl") is None:
        pytest.skip(f"needs Debian's PostgreSQL 15 server ({BINDIR}) and openssl")
    server = TlsCluster()
    try:
        with psycopg.connect(server.socket_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE tls")
        reference.load(server.socket_url.replace("/postgres?", "/tls?"), scale=500)
        yield server
    finally:
        server.stop()


def assert_nothing_secret(run, cluster: TlsCluster) -> None:
    """Neither the terminal nor any file of the report shows the key's passphrase or a TLS file's path."""
    texts = [run.output] + [p.read_text(errors="replace") for p in run.report_dir.rglob("*") if p.is_file()
                            and p.suffix in (".json", ".html", ".md", ".xml", ".txt")]
    for text in texts:
        for secret in (KEY_PASSWORD, str(cluster.certs), "client.key", "ca.crt", "PRIVATE KEY"):
            assert secret not in text


@pytest.mark.parametrize("sslmode", ["verify-full", "require"])
def test_tls_url_signs_off(cluster, sslmode, run_suite, reference_app):
    url = cluster.url("tls", sslmode=sslmode)
    with psycopg.connect(url) as conn:  # the URL really goes over TLS, with the client certificate
        assert conn.execute("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() \
            == (True, "/CN=postgres")
    deployment = reference_app(url)  # the application over TLS too
    run = run_suite("-m", AREAS, "--postdeploy-allow-writes", database_url=url, env=deployment.env)
    assert run.exit_code == PARTIAL_EXIT, run.output
    assert run.signoff["verdict"] == "PARTIAL GO"
    assert run.outcomes("passed") and not run.outcomes("failed")
    assert_nothing_secret(run, cluster)


@pytest.mark.parametrize("wrong, said", [
    ({"ca": "other-ca"}, "TLS: the server's certificate is not signed by the CA in sslrootcert"),
    ({"host": "127.0.0.1"}, "TLS: the server's certificate is not issued for the URL's host name"),
    ({"sslmode": "disable"}, "the server accepts this user only over TLS"),
], ids=["wrong-ca", "wrong-host", "no-tls"])
def test_tls_problem_is_one_line_exit_4(cluster, wrong, said, run_suite):
    params = {k: v for k, v in wrong.items() if k not in ("ca", "host")}
    url = cluster.url("tls", host=wrong.get("host", "localhost"), ca=wrong.get("ca", "ca"), **params)
    run = run_suite("-m", AREAS, database_url=url)
    assert run.exit_code == 4, run.output
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], run.output
    assert_nothing_secret(run, cluster)
