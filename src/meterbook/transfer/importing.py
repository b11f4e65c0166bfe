"""Importing usage events from a file, in batches, through the ingestion service.

Each batch is one transaction, all or nothing, like one ``POST /v1/events``. Event ids make the
import idempotent: after an interruption the same file is simply imported again, and what was
committed before comes back as duplicates. A line that cannot become an event, or that the service
refuses, is reported with its line number and field and left out; every other line is imported.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from meterbook.accounts.models import Principal
from meterbook.db import Database
from meterbook.errors import Conflict, MeterbookError, ValidationFailed, pydantic_message
from meterbook.kit import jsontext
from meterbook.usage import service as usage
from meterbook.usage.schemas import MAX_BATCH, EventIn

__all__ = ["BadLine", "FileFormat", "ImportReport", "count_records", "import_events", "read_events"]

FileFormat = Literal["auto", "jsonl", "csv"]

#: Where the service says a field of the ``N``th event of a batch is wrong: ``body.N.field``.
_EVENT_PATH = re.compile(r"body\.(\d+)(?:\.(.+))?")


@dataclass(frozen=True)
class BadLine:
    """A line that was not imported: where it is, which field (if one is to blame), and why."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@dataclass
class ImportReport:
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    bad: list[BadLine] = field(default_factory=list)


def format_of(path: Path, file_format: FileFormat) -> Literal["jsonl", "csv"]:
    if file_format != "auto":
        return file_format
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def count_records(path: Path, file_format: FileFormat = "auto") -> int:
    """How many records the file holds (for a progress bar): non-blank lines, or CSV rows after the header."""
    if format_of(path, file_format) == "csv":
        with path.open(newline="", encoding="utf-8-sig") as source:
            return max(sum(1 for row in csv.reader(source) if row) - 1, 0)
    with path.open("rb") as source:
        return sum(1 for line in source if line.strip())


def _event(line: int, raw: Any) -> EventIn | BadLine:
    if not isinstance(raw, dict):
        return BadLine(line, None, "is not a JSON object")
    try:
        return EventIn.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first.get("loc", ())) or None
        return BadLine(line, name, pydantic_message(first))


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as source:
        for number, text in enumerate(source, start=1):
            if not text.strip():
                continue
            try:
                yield number, jsontext.loads(text)
            except (ValueError, UnicodeDecodeError) as error:
                yield number, BadLine(number, None, f"is not valid JSON ({error})")


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as source:
        reader = csv.DictReader(source)
        started = reader.line_num + 1
        for row in reader:
            # An empty cell is an absent field; metadata is a JSON object written in its cell.
            record: dict[str, Any] = {key: value for key, value in row.items() if key and value not in ("", None)}
            if "metadata" in record:
                try:
                    record["metadata"] = jsontext.loads(record["metadata"])
                except ValueError as error:
                    yield started, BadLine(started, "metadata", f"is not a JSON object ({error})")
                    started = reader.line_num + 1
                    continue
            yield started, record
            started = reader.line_num + 1


def read_events(path: Path, file_format: FileFormat = "auto") -> Iterator[tuple[int, EventIn | BadLine]]:
    """Each record of the file as an event, or as the reason it is not one, with its line number (from 1)."""
    records = _csv_records(path) if format_of(path, file_format) == "csv" else _jsonl_records(path)
    for line, raw in records:
        yield line, raw if isinstance(raw, BadLine) else _event(line, raw)


class _Importer:
    def __init__(
        self, database: Database, principal: Principal, report: ImportReport, progress: Callable[[int], None] | None
    ) -> None:
        self.database = database
        self.principal = principal
        self.report = report
        self.progress = progress

    def _ingest(self, events: Sequence[EventIn]) -> None:
        with self.database.write() as conn:
            result = usage.ingest(conn, self.principal, events)
        self.report.accepted += result.accepted
        self.report.duplicates += result.duplicates

    def flush(self, batch: list[tuple[int, EventIn]]) -> None:
        if not batch:
            return
        try:
            self._ingest([event for _, event in batch])
        except ValidationFailed as error:
            # The service names each bad event by its place in the batch: leave those out, try the rest.
            blamed: dict[int, BadLine] = {}
            for problem in error.errors:
                found = _EVENT_PATH.fullmatch(problem.path)
                if found and int(found.group(1)) < len(batch):
                    index = int(found.group(1))
                    blamed.setdefault(index, BadLine(batch[index][0], found.group(2), problem.message))
            if not blamed:
                self._one_by_one(batch)
            else:
                self.report.bad.extend(blamed[index] for index in sorted(blamed))
                if self.progress:
                    self.progress(len(blamed))
                self.flush([item for index, item in enumerate(batch) if index not in blamed])
                return  # the rest counted its own progress
        except MeterbookError:
            # A refusal of the whole batch (a conflict, too few credits, a limit): find the lines to blame.
            self._one_by_one(batch)
        if self.progress:
            self.progress(len(batch))

    def _one_by_one(self, batch: list[tuple[int, EventIn]]) -> None:
        for line, event in batch:
            try:
                self._ingest([event])
            except MeterbookError as error:
                self.report.bad.append(BadLine(line, _blamed_field(error), _message(error)))


def _blamed_field(error: MeterbookError) -> str | None:
    if isinstance(error, Conflict):
        return "id"
    if isinstance(error, ValidationFailed) and error.errors:
        found = _EVENT_PATH.fullmatch(error.errors[0].path)
        return found.group(2) if found else None
    return None


def _message(error: MeterbookError) -> str:
    if isinstance(error, ValidationFailed) and error.errors:
        return error.errors[0].message
    return error.message


def import_events(
    database: Database,
    principal: Principal,
    path: Path,
    *,
    file_format: FileFormat = "auto",
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every event of the file; ``progress`` is told how many records each step has dealt with."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} events")
    report = ImportReport()
    importer = _Importer(database, principal, report, progress)
    batch: list[tuple[int, EventIn]] = []
    for line, item in read_events(path, file_format):
        report.records += 1
        if isinstance(item, BadLine):
            report.bad.append(item)
            if progress:
                progress(1)
            continue
        batch.append((line, item))
        if len(batch) >= batch_size:
            importer.flush(batch)
            batch = []
    importer.flush(batch)
    report.bad.sort(key=lambda bad: bad.line)
    return report
