"""PostgreSQL for the benchmarks: a throwaway cluster, or a server given by URL, and databases made and dropped on it.

The throwaway cluster is started the way ``scripts/lib/postgres.sh`` starts one for the tests (``initdb`` in a
temporary directory, ``pg_ctl``, as the ``postgres`` user when run as root), except that it keeps PostgreSQL's
durable defaults (``fsync``, ``synchronous_commit``, ``full_page_writes`` on): the targets of issue 6 are for
writes that are durable before they are acknowledged, and the tests' speed settings would flatter PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

__all__ = ["server_binaries", "temporary_database", "throwaway_postgres"]


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL ``bin`` directory with ``initdb``, or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: [int(part) if part.isdigit() else 0 for part in path.parent.name.split(".")],
    )
    found = shutil.which("pg_ctl")
    if found:
        candidates.insert(0, Path(found).parent)
    usable = [path for path in candidates if (path / "initdb").exists() and (path / "pg_ctl").exists()]
    return usable[-1] if usable else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a durable PostgreSQL cluster in a temporary directory; yield its maintenance URL; stop and remove it."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    directory = Path(tempfile.mkdtemp(prefix="meterbook-bench-pg."))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root; Debian's package brings the postgres user.
        shutil.chown(directory, user="postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = directory / "data", _free_port()
    pg_ctl = [*run_as, str(binaries / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*run_as, str(binaries / "initdb"), "-D", str(data), "-U", "meterbook", "-A", "trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=100"
        subprocess.run(
            [*pg_ctl, "-w", "-l", str(directory / "server.log"), "-o", options, "start"],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as error:
        log = directory / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else error.stderr.decode(errors="replace")
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"could not start a throwaway PostgreSQL: {detail}") from error
    try:
        yield f"postgresql+psycopg://meterbook@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=False, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def temporary_database(server_url: str, prefix: str = "bench_h") -> Iterator[str]:
    """A new empty database on the server that ``server_url`` reaches, dropped afterwards; yields its URL."""
    parsed = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    maintenance = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield parsed.set(database=name).render_as_string(hide_password=False)
        finally:
            with maintenance.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        maintenance.dispose()
