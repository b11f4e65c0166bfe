"""The database handle: one engine, read and write transactions, and the SQLite rules.

SQLite runs in WAL mode with one writer: writes in this process take a lock and open with
``BEGIN IMMEDIATE``, so a transaction never has to upgrade a read lock to a write lock (SQLite
answers that with an immediate "database is locked"). Readers run beside the writer. PostgreSQL
gets an ordinary pool; rules that check balances take row locks themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from meterbook.db.group_commit import GroupCommitter

__all__ = ["Database"]

Item = TypeVar("Item")
Result = TypeVar("Result")

_SQLITE_BEGIN = "meterbook_sqlite_begin"


class Database:
    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = url
        #: Connections the pool keeps open; as many again may be opened for a moment and then closed.
        self.pool_size = pool_size
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            _configure_sqlite(self.engine, sqlite_synchronous)
        else:
            self.engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self._write_lock = threading.Lock()
        self._committers: dict[str, GroupCommitter[Any, Any]] = {}
        self._committers_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that commits when the block ends without error and rolls back otherwise."""
        if self.is_sqlite:
            with self._write_lock, self.engine.connect() as conn:
                conn = conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
                with conn.begin():
                    yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction for reading; it sees one consistent snapshot and writes nothing.

        SQLite gives a snapshot to every read transaction in WAL mode; PostgreSQL needs REPEATABLE READ for it
        (a count and the page it describes then agree even while usage is written).
        """
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
                conn.rollback()

    def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        with self.read() as conn:
            conn.exec_driver_sql("SELECT 1")

    def group_committer(
        self,
        name: str,
        apply: Callable[[Connection, Sequence[Item]], Sequence[Result | BaseException]],
        *,
        weigh: Callable[[Item], int],
        max_weight: int,
    ) -> GroupCommitter[Item, Result]:
        """The one committer called ``name`` of this database (see ``group_commit.py``), made on first use."""
        with self._committers_lock:
            committer = self._committers.get(name)
            if committer is None:
                committer = GroupCommitter(self, apply, weigh=weigh, max_weight=max_weight, name=f"meterbook-{name}")
                self._committers[name] = committer
            return committer

    def dispose(self) -> None:
        with self._committers_lock:
            committers, self._committers = list(self._committers.values()), {}
        for committer in committers:
            committer.close()
        self.engine.dispose()


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # meterbook issues BEGIN itself (below), so the driver must not open transactions on its own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        # Straight to the driver: every transaction starts here, and SQLAlchemy's execution path would
        # cost more than the statement (no parameters, no result).
        conn.connection.driver_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]
