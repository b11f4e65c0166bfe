"""The ``meterbook`` command: a caller of the services, like the HTTP dialects."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from meterbook.accounts import service as accounts
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.migrate import migrate

__all__ = ["main"]

app = typer.Typer(help="meterbook: usage metering and billing.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()


def _database(settings: Settings) -> Database:
    return Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous, pool_size=2)


def _serve(settings: Settings, workers: int) -> None:
    if settings.is_sqlite and workers != 1:
        raise typer.BadParameter("SQLite has one writer process: use --workers 1, or PostgreSQL for more.")
    uvicorn.run(
        "meterbook.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
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

    os.environ["METERBOOK_HOST"] = settings.host
    os.environ["METERBOOK_PORT"] = str(settings.port)
    os.environ["METERBOOK_MIGRATE_ON_START"] = "false"


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
) -> None:
    """Create a platform key and print it (it is shown only this once)."""
    if not platform:
        raise typer.BadParameter("only --platform keys are made here; other keys come from POST /v1/api_keys")
    settings = Settings()
    database = _database(settings)
    migrate(database)
    with database.write() as conn:
        created = accounts.create_platform_key(conn, name)
    database.dispose()
    typer.echo(created.token)


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
        for org in organizations:
            # One transaction per organization: each is invoiced whole or not at all.
            with database.write() as conn:
                run = invoicing.run_billing(conn, org.id, month)
            state = "[green]invoiced[/green]" if run.created else "already invoiced"
            console.print(f"{org.name} ({org.id}): {month} {state}, {run.invoice_count} invoices", soft_wrap=True)
    except MeterbookError as error:
        console.print(f"[red]{error}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
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
    with database.read() as conn:
        result = aggregates.verify(conn)
        ledger_differences = ledger.verify(conn)
        invoice_differences = invoicing.verify(conn)
    database.dispose()
    differences = result.differences + ledger_differences + invoice_differences
    for difference in differences:
        console.print(f"[red]difference[/red] {difference}", soft_wrap=True)
    if differences:
        console.print(f"[red]{len(differences)} differences[/red] ({result.checked} aggregates checked)")
        raise typer.Exit(1)
    console.print(
        f"[green]No differences[/green]: {result.checked} aggregates, every credit balance and every invoice "
        "match the raw rows."
    )


def main() -> None:
    app()
