"""Moving data in and out in bulk: usage events from JSON lines or CSV files, and CSV exports.

A caller of the domain services like the HTTP dialects: an import goes through the same ingestion
service as ``POST /v1/events`` and an export through the same reads as the API, both as an API key
(so its organization, reach and scopes apply unchanged), directly on the database.
"""

from meterbook.transfer.access import principal_for
from meterbook.transfer.exporting import EXPORTS, ExportKind, export_csv
from meterbook.transfer.importing import BadLine, FileFormat, ImportReport, count_records, import_events, read_events

__all__ = [
    "EXPORTS",
    "BadLine",
    "ExportKind",
    "FileFormat",
    "ImportReport",
    "count_records",
    "export_csv",
    "import_events",
    "principal_for",
    "read_events",
]
