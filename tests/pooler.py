"""Debian's PgBouncer in front of a test server, on a loopback port, as a hosted pooler stands
in front of a user's database: its own ini and user list, written here, in one pool mode."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """Started on construction in front of the server `admin_url` names (TCP or a Unix socket);
    `url(database)` reaches any of its databases through the pool."""

    def __init__(self, admin_url: str, mode: str, users: tuple[str, ...] = ()) -> None:
        parts = urlsplit(admin_url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        host = socket_dir or parts.hostname or "127.0.0.1"
        self.user = parts.username or "postgres"
        self.mode = mode
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix=f"pgbouncer-{mode}-"))
        os.chmod(self.folder, 0o755)
        (self.folder / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in (self.user, *users)))
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={parts.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.folder / 'userlist.txt'}\n"
            f"pool_mode = {mode}\ndefault_pool_size = 10\nmax_client_conn = 200\n"
            "server_login_retry = 1\n"
        )
        command = [BINARY, str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses root: run it as the owner of the server's socket
            owner = pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name if socket_dir else "nobody"
            command[1:1] = ["-u", owner]
        self.log = self.folder / "pgbouncer.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def url(self, database: str, user: str = "") -> str:
        return urlunsplit(("postgresql", f"{user or self.user}@127.0.0.1:{self.port}", f"/{database}", "", ""))

    def url_for(self, direct_url: str, user: str = "") -> str:
        """The pooled URL of the database a direct URL names (as `user`, else the server's)."""
        return self.url(urlsplit(direct_url).path.lstrip("/"), user)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while True:
            try:
                with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start:\n{self.log.read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)
