"""A private PostgreSQL cluster in a folder: what `botwatch up --fleet` and the tests run the ledger on.

Debian's `postgresql` package (15) puts initdb and pg_ctl in /usr/lib/postgresql/N/bin. PostgreSQL
refuses to run as root, so as root the cluster belongs to the `postgres` user the package creates.
It listens on 127.0.0.1 only, with its socket in its own folder, and trusts local connections: it is
a throwaway for one stack or one test session, never a production database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresError(RuntimeError):
    pass


def pg_bin(name: str) -> str:
    """The path of a PostgreSQL server program (initdb, pg_ctl), newest version first."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise PostgresError(f"{name} not found: install Debian's postgresql package (`make test` does)")
    return found


class PostgresCluster:
    def __init__(self, folder: Path | None = None, port: int = 0):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="botwatch-pg-"))
        self.data = self.folder / "data"
        self.port = port
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ("runuser", "-u", "postgres", "--", *argv)
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/", stdin=subprocess.DEVNULL)
        if check and result.returncode:
            raise PostgresError(f"{' '.join(argv)}: {(result.stderr or result.stdout).strip()[-800:]}")
        return result

    def start(self, timeout: float = 30.0) -> "PostgresCluster":
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--no-sync")
        if not self.port:
            from botwatch.core.serve import free_port
            self.port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c max_connections=200"
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options,
                  "-w", "-t", str(int(timeout)), "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        return self._run(pg_bin("pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg
        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(self.url(), autocommit=True, connect_timeout=3) as db:
                    db.execute(f'CREATE DATABASE "{name}"')
                return self.url(name)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
