"""A larger page cache for the few transactions that write far more than a request does (a billing run).

SQLite's default cache is 2 MiB per connection. A billing run of ten thousand accounts writes some
130,000 rows into tables with several indexes in one transaction: with the default cache, the pages
it dirties spill to the WAL and are read back while the run is still writing. The cache is raised only
for the duration of such a transaction, so idle pooled connections keep the small default. PostgreSQL
sizes its own shared buffers: nothing to do there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

__all__ = ["LARGE_CACHE_KIB", "large_cache"]

#: The page cache of a large transaction, in KiB (SQLite's negative cache_size).
LARGE_CACHE_KIB = 65_536


@contextmanager
def large_cache(conn: Connection) -> Iterator[None]:
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    (previous,) = driver.execute("PRAGMA cache_size").fetchone()
    driver.execute(f"PRAGMA cache_size=-{LARGE_CACHE_KIB}")
    try:
        yield
    finally:
        # An int read from SQLite itself, never input.
        driver.execute(f"PRAGMA cache_size={int(previous)}")
