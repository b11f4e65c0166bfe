"""Many rows in one driver call, for the hot write paths: each column's type conversion, nothing else.

SQLAlchemy's executemany builds a parameter dictionary per row and runs its bookkeeping around each;
for a batch of a thousand events that cost more than the insert itself. Here the statement text is
built once per table, column list and dialect, the values come as tuples in column order, and each
column's own bind processor (the same conversion SQLAlchemy applies: UUID to hex text on SQLite,
aware datetimes to UTC text, fixed-scale decimals to integers) is applied in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

__all__ = ["insert_rows"]

_Processor = Callable[[Any], Any] | None


@cache
def _prepared(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> tuple[str, tuple[_Processor, ...]]:
    quote = dialect.identifier_preparer.quote
    # qmark on SQLite; psycopg takes positional %s.
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in columns)}) "  # noqa: S608
        f"VALUES ({', '.join(marker for _ in columns)})"
    )
    # The dialect's own form of each type, as SQLAlchemy's compiler takes it: a decorated type's generic impl
    # (DateTime) has no processor of its own, and the driver's adapter would then write SQLite's timestamps as
    # text without microseconds when they are zero, which sorts before the same instant written by SQLAlchemy.
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns)
    return statement, processors


def insert_rows(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (tuples of Python values in the order of ``columns``) with one executemany.

    The table and column names come from the schema, never from input.
    """
    if not rows:
        return
    statement, processors = _prepared(conn.dialect, table, columns)
    converting = [(index, processor) for index, processor in enumerate(processors) if processor is not None]
    if converting:
        converted: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for index, processor in converting:
                value = values[index]
                if value is not None:
                    values[index] = processor(value)
            converted.append(values)
        rows = converted
    conn.exec_driver_sql(statement, [tuple(row) for row in rows])
