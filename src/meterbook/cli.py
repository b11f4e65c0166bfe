"""The ``meterbook`` command: a caller of the services, like the HTTP dialects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import typer
import uvicorn
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.access import Action
from meterbook.accounts.models import Principal
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.migrate import migrate

__all__ = ["main"]

app = typer.Typer(help="meterbook: usage metering and billing.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
#: Progress bars and summaries of commands whose stdout may be data (an export): they go to stderr.
status_console = Console(stderr=True)


def _database(settings: Settings) -> Database:
    return Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous, pool_size=2)


def _serve(settings: Settings, workers: int) -> None:
    if settings.is_sqlite and workers != 1:
        raise typer.BadParameter("SQLite has one writer process: use --workers 1, or PostgreSQL for more.")
    if workers > 1:
        import tempfile
        from pathlib import Path

        from meterbook import metrics

        # One scrape must show every worker's counts: they write them to one directory, made fresh per server.
        metrics.prepare_multiprocess(Path(tempfile.mkdtemp(prefix="meterbook-metrics-")))
    uvicorn.run(
        "meterbook.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,  # meterbook writes its own access line, with the request id and the route
    )


HostOption = Annotated[str | None, typer.Option(help="Address to listen on (default METERBOOK_HOST or 127.0.0.1).")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on (default METERBOOK_PORT or 8000).")]


def _settings(host: str | None = None, port: int | None = None) -> Settings:
    settings = Settings()
    overrides = {name: value for name, value in (("host", host), ("port", port)) if value is not None}
    return settings.model_copy(update=overrides) if overrides else settings


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (PostgreSQL only).")] = 1,
) -> None:
    """Migrate the database, then serve the API."""
    settings = _settings(host, port)
    database = _database(settings)
    migrate(database)
    database.dispose()
    _export(settings)
    _serve(settings, workers)


def _export(settings: Settings) -> None:
    """Hand the effective settings to uvicorn's workers, which read them from the environment."""
    import os
    import secrets

    os.environ["METERBOOK_HOST"] = settings.host
    os.environ["METERBOOK_PORT"] = str(settings.port)
    os.environ["METERBOOK_MIGRATE_ON_START"] = "false"
    # One console session key for every worker: a session signed by one must be honoured by the others.
    os.environ.setdefault("METERBOOK_SESSION_SECRET", secrets.token_urlsafe(32))


@app.command("migrate")
def migrate_command() -> None:
    """Create the database if needed and bring its schema up to date."""
    settings = Settings()
    database = _database(settings)
    migrate(database)
    database.dispose()
    console.print(f"[green]Database is up to date[/green] ({database.dialect}).")


@keys_app.command("create")
def keys_create(
    platform: Annotated[
        bool, typer.Option("--platform", help="A platform key, which may create organizations.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="A name to recognise the key by.")] = None,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="When the key stops working, e.g. 2027-06-30T00:00:00Z (UTC if no offset)."),
    ] = None,
) -> None:
    """Create a platform key and print it (it is shown only this once)."""
    if not platform:
        raise typer.BadParameter("only --platform keys are made here; other keys come from POST /v1/api_keys")
    expiry = None if expires_at is None else _instant(expires_at, "--expires-at")
    with _operator_database() as database, database.write() as conn:
        created = accounts.create_platform_key(conn, name, expiry)
    typer.echo(created.token)


def _instant(text: str, option: str) -> datetime:
    """An RFC 3339 instant from the command line; ``now`` is now, and one without an offset is UTC."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date and time: write e.g. 2027-06-30T00:00:00Z", param_hint=option
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _key_id(text: str) -> uuid.UUID:
    from meterbook.accounts.keys import parse_key, parse_key_id

    parsed = parse_key(text.strip())
    key_id = parsed.key_id if parsed is not None else parse_key_id(text.strip())
    if key_id is None:
        raise typer.BadParameter(
            f"{text!r} is not a key id: give the id shown by 'meterbook keys list --platform' or by GET /v1/api_keys",
            param_hint="KEY_ID",
        )
    return key_id


@contextmanager
def _operator_database() -> Iterator[Database]:
    """The database, migrated, for a command that acts as the operator; a domain error is a usage error."""
    from meterbook.errors import MeterbookError

    database = _database(Settings())
    try:
        migrate(database)
        yield database
    except MeterbookError as error:
        raise typer.BadParameter(error.message) from None
    finally:
        database.dispose()


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@keys_app.command("list")
def keys_list(
    platform: Annotated[bool, typer.Option("--platform", help="List the platform keys.")] = False,
) -> None:
    """List the platform keys: id, name, masked key, created, expires, revoked (secrets are never shown again)."""
    if not platform:
        raise typer.BadParameter("only --platform keys are listed here; other keys are listed by GET /v1/api_keys")
    with _operator_database() as database, database.read() as conn:
        found = accounts.list_platform_keys(conn)
    if not found:
        console.print("No platform keys: make one with 'meterbook keys create --platform'.")
        return
    # Tab-separated, one key a line and never cut to the terminal's width: ids are copied from it.
    typer.echo("id\tname\tkey\tcreated\texpires\trevoked")
    for key in found:
        fields = (str(key.id), key.name or "", key.masked, _when(key.created_at), _when(key.expires_at))
        typer.echo("\t".join((*fields, _when(key.revoked_at))))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (or the whole key).")]) -> None:
    """Revoke a key at once, with every key it made (for any key; platform keys have no other way)."""
    wanted = _key_id(key_id)
    with _operator_database() as database, database.write() as conn:
        key, revoked = accounts.revoke_any_key(conn, wanted)
    console.print(f"Revoked key {key.id} ({key.name or key.masked}) and {revoked} key(s) it made.")


@keys_app.command("expire")
def keys_expire(
    key_id: Annotated[str, typer.Argument(help="The key's id (or the whole key).")],
    at: Annotated[str, typer.Option("--at", help="When it stops working: 'now' or e.g. 2027-06-30T00:00:00Z.")],
) -> None:
    """Make a key (and every key it made) stop working at a given time."""
    wanted, moment = _key_id(key_id), _instant(at, "--at")
    with _operator_database() as database, database.write() as conn:
        key = accounts.expire_any_key(conn, wanted, moment)
    console.print(f"Key {key.id} ({key.name or key.masked}) expires at {_when(moment)}, and so do the keys it made.")


@app.command()
def demo(
    host: HostOption = None,
    port: PortOption = None,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the server after seeding.")] = True,
) -> None:
    """Create a demo organization with accounts, a subaccount, projects and keys; print how to call it; serve."""
    from meterbook.demo import print_guide, seed

    settings = _settings(host, port)
    database = _database(settings)
    migrate(database)
    with database.write() as conn:
        demo_data = seed(conn)
    database.dispose()
    print_guide(console, settings.base_url, demo_data)
    if serve_after:
        _export(settings)
        _serve(settings, 1 if settings.is_sqlite else 2)


@app.command()
def bill(
    month: Annotated[str, typer.Option(help="The ended UTC month to invoice, YYYY-MM.")],
    organization: Annotated[
        str | None, typer.Option(help="Only this organization (its id); default: every organization.")
    ] = None,
) -> None:
    """Invoice an ended month for every account with a commitment or usage in it; a billed month is left alone."""
    import uuid

    from pydantic import ValidationError

    from meterbook.errors import MeterbookError
    from meterbook.invoicing import service as invoicing
    from meterbook.invoicing.schemas import BillingRunIn

    try:
        month = BillingRunIn(month=month).month
    except ValidationError:
        raise typer.BadParameter(f"{month!r} is not a month written YYYY-MM", param_hint="--month") from None
    try:
        invoicing.require_ended(month)
    except MeterbookError as error:
        _fail(error)
    settings = Settings()
    database = _database(settings)
    migrate(database)
    with database.read() as conn:
        organizations = accounts.list_organizations(conn)
    if organization is not None:
        organizations = [org for org in organizations if str(org.id) == str(uuid.UUID(organization))]
        if not organizations:
            raise typer.BadParameter(f"no organization with id {organization}", param_hint="--organization")
    try:
        with _progress("organizations") as progress:
            task = progress.add_task(f"billing {month}", total=len(organizations))
            for org in organizations:
                # One transaction per organization: each is invoiced whole or not at all.
                with database.write() as conn:
                    run = invoicing.run_billing(conn, org.id, month)
                state = "[green]invoiced[/green]" if run.created else "already invoiced"
                console.print(f"{org.name} ({org.id}): {month} {state}, {run.invoice_count} invoices", soft_wrap=True)
                progress.advance(task)
    except MeterbookError as error:
        _fail(error)
    finally:
        database.dispose()


@app.command()
def verify() -> None:
    """Recompute aggregates and credit balances from the raw rows, re-add every invoice; exit 1 on any difference."""
    from meterbook.aggregates import service as aggregates
    from meterbook.invoicing import service as invoicing
    from meterbook.ledger import service as ledger

    settings = Settings()
    database = _database(settings)
    with database.read() as conn, _progress("events") as progress:
        task = progress.add_task("verifying aggregates", total=None)

        def events_read(done: int, expected: int) -> None:
            progress.update(task, completed=done, total=max(expected, done, 1))

        result = aggregates.verify(conn, events_read)
        balances = progress.add_task("verifying credit balances", total=1, unit=None)
        ledger_differences = ledger.verify(conn)
        progress.advance(balances)
        lines = progress.add_task("verifying invoices", total=1, unit=None)
        invoice_differences = invoicing.verify(conn)
        progress.advance(lines)
    database.dispose()
    differences = result.differences + ledger_differences + invoice_differences
    for difference in differences:
        console.print(f"[red]difference[/red] {difference}", soft_wrap=True)
    if differences:
        console.print(f"[red]{len(differences)} differences[/red] ({result.checked} aggregates checked)")
        raise typer.Exit(1)
    console.print(
        f"[green]No differences[/green]: {result.checked} aggregates, {result.charges_checked} usage charges priced "
        "again, every credit balance and every invoice match the raw rows."
    )


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        # A task may count something else than the bar's first one, or be one step with no rate (verify's last two).
        unit = task.fields.get("unit", self.unit)
        if unit is None:
            return Text("")
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {unit}/s" if speed else f"? {unit}/s", style="progress.data.speed")


@contextmanager
def _progress(unit: str) -> Iterator[Progress]:
    """A bar with count, rate and time left, on stderr (drawn only on a terminal)."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        _RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=status_console,
        transient=False,
    ) as progress:
        yield progress


KeyOption = Annotated[
    str,
    typer.Option(
        "--key",
        envvar="METERBOOK_KEY",
        show_envvar=True,
        help="An API key of the organization (or of an account, to reach only its subtree). "
        "Prefer the environment variable: a key on the command line lands in the shell's history.",
    ),
]


def _authorized(database: Database, key: str, action: Action) -> Principal:
    from meterbook.errors import MeterbookError
    from meterbook.transfer import principal_for

    try:
        return principal_for(database, key, action)
    except MeterbookError as error:
        database.dispose()
        raise typer.BadParameter(error.message, param_hint="--key / METERBOOK_KEY") from None


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSON lines or CSV.")],
    key: KeyOption,
    file_format: Annotated[
        Literal["auto", "jsonl", "csv"],
        typer.Option("--format", help="auto: CSV for a .csv file, JSON lines otherwise."),
    ] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per transaction.")] = 1000,
) -> None:
    """Import usage events (the fields of POST /v1/events, one event per line or row).

    Safe to run again after an interruption: events already imported are counted as duplicates. A line
    that cannot be imported is reported with its number and field, the others are imported; exit 1 if any.
    """
    from meterbook.transfer import count_records, import_events

    settings = Settings()
    database = _database(settings)
    migrate(database)
    principal = _authorized(database, key, access.REPORT_USAGE)
    total = count_records(file, file_format)
    try:
        with _progress("events") as progress:
            task = progress.add_task(f"importing {file.name}", total=total)
            report = import_events(
                database,
                principal,
                file,
                file_format=file_format,
                batch_size=batch_size,
                progress=lambda done: progress.advance(task, done),
            )
    finally:
        database.dispose()
    for bad in report.bad[:100]:
        status_console.print(f"[red]{bad}[/red]", soft_wrap=True, highlight=False)
    if len(report.bad) > 100:
        status_console.print(f"[red]... and {len(report.bad) - 100} more bad lines[/red]")
    console.print(
        f"{report.records} records: {report.accepted} imported, {report.duplicates} duplicates "
        f"(imported before), {len(report.bad)} not imported",
        highlight=False,
    )
    if report.bad:
        raise typer.Exit(1)


@app.command("export")
def export_command(
    kind: Annotated[Literal["invoices", "payments", "usage", "history"], typer.Argument(help="What to export.")],
    key: KeyOption,
    export_format: Annotated[Literal["csv"], typer.Option("--format", help="The only format is csv.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    from_month: Annotated[str | None, typer.Option("--from", help="First month, YYYY-MM.", metavar="YYYY-MM")] = None,
    to_month: Annotated[str | None, typer.Option("--to", help="Last month, YYYY-MM.", metavar="YYYY-MM")] = None,
) -> None:
    """Export what the key reaches as CSV with a header row: exact decimals, RFC 3339 times in UTC.

    invoices (one row each), payments, usage (monthly aggregates), history (the billing history).
    --from/--to keep the months in between (by invoice month, payment date, aggregate month, item date).
    """
    import re
    import sys

    from meterbook.transfer import EXPORTS, export_csv

    for name, month in (("--from", from_month), ("--to", to_month)):
        if month is not None and not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", month):
            raise typer.BadParameter(f"{month!r} is not a month written YYYY-MM", param_hint=name)
    settings = Settings()
    database = _database(settings)
    migrate(database)
    principal = _authorized(database, key, EXPORTS[kind].action)
    try:
        if output is None:
            rows = export_csv(database, principal, kind, sys.stdout, first_month=from_month, last_month=to_month)
        else:
            with output.open("w", newline="", encoding="utf-8") as out:
                rows = export_csv(database, principal, kind, out, first_month=from_month, last_month=to_month)
    finally:
        database.dispose()
    where = str(output) if output else "stdout"
    status_console.print(f"{rows} {kind} rows written to {where} ({export_format})", highlight=False)


def _fail(error: Exception) -> NoReturn:
    """End the command with the error in words a person can act on (exit 1), never a traceback."""
    from meterbook.problems import explain

    message = explain(error) or str(error)
    status_console.print(Text("Error: ", style="bold red") + Text(message), soft_wrap=True)
    raise typer.Exit(1)


def main() -> None:
    """The ``meterbook`` program: every command, and no traceback for anything a person can set or type wrong."""
    import os

    from meterbook.problems import explain

    try:
        app()
    except Exception as error:
        if os.environ.get("METERBOOK_DEBUG") == "1":
            raise
        if explain(error) is None:
            error = RuntimeError(
                f"meterbook failed unexpectedly ({type(error).__name__}: {error}). This is a bug: please report it "
                "with the command you ran; METERBOOK_DEBUG=1 shows the traceback."
            )
        try:
            _fail(error)
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
