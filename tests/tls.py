"""A private PostgreSQL cluster from Debian's packages that accepts TCP connections over TLS
only, with a CA, a server and a client certificate made here by `openssl`, as a managed
provider's server is reached."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from pooler import free_port

BINDIR = Path("/usr/lib/postgresql/15/bin")
KEY_PASSWORD = "tls-key-passphrase-7f3a"  # the client key's passphrase, given as sslpassword


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=folder)


def make_signed(folder: Path, ca: str, name: str, subject: str, extensions: str, *key_options: str) -> None:
    """A key and a certificate for `subject`, signed by `ca`."""
    openssl("genrsa", *key_options, "-out", f"{name}.key", "2048", cwd=folder)
    openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={subject}", "-out", f"{name}.csr",
            *(["-passin", f"pass:{KEY_PASSWORD}"] if key_options else []), cwd=folder)
    (folder / f"{name}.ext").write_text(extensions)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=folder)


class TlsCluster:
    """initdb + pg_ctl on a free loopback port: `hostssl` with a client certificate signed by the
    CA, every plain TCP connection rejected. The server's certificate names localhost only."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pd-tls-"))
        os.chmod(self.folder, 0o755)
        self.certs = self.folder / "certs"
        self.certs.mkdir()
        make_ca(self.certs, "ca")
        make_ca(self.certs, "other-ca")
        make_signed(self.certs, "ca", "server", "localhost", "subjectAltName=DNS:localhost\n")
        make_signed(self.certs, "ca", "client", "postgres", "extendedKeyUsage=clientAuth\n",
                    "-aes256", "-passout", f"pass:{KEY_PASSWORD}")
        os.chmod(self.certs / "client.key", 0o600)
        self.port = free_port()
        self.data = self.folder / "data"
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None  # initdb refuses root
        server_key = self.folder / "server.key"
        shutil.copy(self.certs / "server.key", server_key)
        os.chmod(server_key, 0o600)
        if self._user:
            os.chown(server_key, self._user.pw_uid, self._user.pw_gid)
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        self._run(BINDIR / "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.folder}'\n"
                       f"ssl = on\nssl_cert_file = '{self.certs / 'server.crt'}'\nssl_key_file = '{server_key}'\n"
                       f"ssl_ca_file = '{self.certs / 'ca.crt'}'\nfsync = off\n")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n"
            "hostnossl all all 127.0.0.1/32 reject\n"
        )
        self._run(BINDIR / "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "start")

    def _run(self, *command: object) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._user else []
        subprocess.run([*prefix, *map(str, command)], check=True, capture_output=True)

    @property
    def socket_url(self) -> str:
        """The local socket, for loading data (no TLS there)."""
        return f"postgresql://postgres@/postgres?host={self.folder}&port={self.port}"

    def url(self, database: str, host: str = "localhost", ca: str = "ca", **params: str) -> str:
        """A TLS URL with the client certificate, its encrypted key and sslpassword; `params` add or
        replace (sslmode=require, a wrong sslrootcert)."""
        query = {"sslmode": "verify-full", "sslrootcert": str(self.certs / f"{ca}.crt"),
                 "sslcert": str(self.certs / "client.crt"), "sslkey": str(self.certs / "client.key"),
                 "sslpassword": KEY_PASSWORD} | params
        return f"postgresql://postgres@{host}:{self.port}/{database}?{urlencode(query)}"

    def stop(self) -> None:
        try:
            self._run(BINDIR / "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
