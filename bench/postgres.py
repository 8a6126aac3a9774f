"""A throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary folder) for benchmarks and tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def pg_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if candidates:
        return candidates[0].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    bindir: Path
    base: Path
    port: int
    run_as: list[str]
    options: str = ""

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def socket_url(self, dbname: str) -> str:
        """The same database over the server's unix socket, as a gateway on the database's host connects."""
        return f"postgresql+psycopg://postgres@/{dbname}?host={self.base / 'sock'}&port={self.port}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(sql)

    def version(self) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres") as connection:
            return str(connection.execute("SHOW server_version").fetchone()[0])

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(self.run_as + [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args], check=True,
                       capture_output=True, timeout=60)

    def stop(self) -> None:
        subprocess.run(self.run_as + [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate",
                                      "stop"], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def start_cluster(prefix: str = "ente-gateway-pg-", shared_buffers: str | None = None) -> Cluster:
    """initdb into a fresh folder outside pytest's root-private temp dir; as root the server runs as postgres.

    Durability is off (fsync, synchronous_commit): tests and benchmarks measure the gateway, not the disk.
    """
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix=prefix))
    sockdir = base / "sock"
    sockdir.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(sockdir, "postgres")
        os.chmod(base, 0o755)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    cluster = Cluster(bindir, base, port, run_as)
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(cluster.datadir), "-U", "postgres", "--auth=trust",
                             "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    options = (f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
               "-c synchronous_commit=off -c max_connections=200")
    if shared_buffers:
        options += f" -c shared_buffers={shared_buffers}"
    cluster.options = options
    cluster.pg_ctl("-o", options, "-l", str(base / "log"), "-w", "start")
    return cluster
