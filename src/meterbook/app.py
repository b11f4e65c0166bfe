"""The application factory: one core, the dialects mounted over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute

from meterbook import __version__, web
from meterbook.api import (
    alerts,
    billing,
    cloudflare,
    faraday,
    fast_events,
    frontier,
    frontier_connect,
    metering,
    native,
    plans,
    system,
    talkdesk,
    webhooks,
)
from meterbook.api.errors import ErrorRenderer, install_error_handlers, renderer_for
from meterbook.api.limits import BodySizeLimit
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.migrate import migrate
from meterbook.jobs import Worker
from meterbook.log import configure_logging
from meterbook.webhooks import service as webhook_service

__all__ = ["app_from_env", "create_app"]

#: Which error shape answers a path: the first prefix that matches; Faraday's for everything else.
ERROR_DIALECTS: list[tuple[str, ErrorRenderer]] = [
    ("/v1beta1", frontier.render_error),
    (frontier_connect.PREFIX, frontier_connect.render_error),
    ("/express", talkdesk.render_error),
    ("/client/v4", cloudflare.render_error),
    ("/ui", web.render_error),
]
DEFAULT_ERRORS: ErrorRenderer = faraday.render_error

DESCRIPTION = """\
Usage metering and billing. Authenticate with `Authorization: Bearer <key>`.

Dialects: Faraday (`/v1/accounts…`, `/v1/usages`), the native management API (`/v1/…`), Talkdesk
(`/express/usage/month`), Frontier (`/v1beta1/…`, and over ConnectRPC at
`/raystack.frontier.v1beta1.<Service>/<Method>`) and Cloudflare (`/client/v4/user/billing/history`,
which also accepts `X-Auth-Email` + `X-Auth-Key`). Errors come in each dialect's own shape.
"""


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    database = database or Database(
        settings.database_url, sqlite_synchronous=settings.sqlite_synchronous, pool_size=settings.pool_size
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            migrate(database)
        # Every worker thread of a request holds at most one pooled connection, so no more threads than the
        # pool keeps: with anyio's default of 40, requests beyond the pool opened and closed a connection each
        # time (a new PostgreSQL backend, cold catalog caches), which cost a loaded server more than queueing.
        anyio.to_thread.current_default_thread_limiter().total_tokens = database.pool_size
        # The job worker runs in every server process (each uvicorn worker runs this lifespan): on PostgreSQL
        # their claims never overlap (jobs/repository.py); on SQLite there is one process.
        worker = Worker(database, settings, after_pass=[webhook_service.observe_backlog]) if settings.worker else None
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            database.dispose()

    app = FastAPI(
        title="meterbook",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.database = database
    app.state.settings = settings
    install_error_handlers(app, ERROR_DIALECTS, DEFAULT_ERRORS)
    for router in (
        system.router,
        faraday.router,
        native.router,
        metering.router,
        plans.router,
        billing.router,
        webhooks.router,
        alerts.router,
        frontier.router,
        talkdesk.router,
        cloudflare.router,
    ):
        app.include_router(router)
    frontier_connect.install(app)  # after the Frontier routes: it serves the methods they bind
    system.install_docs(app)
    web.install(app)
    # Added first, so it sits inside the body-size limit and the request observer (ids, logs, metrics).
    fast_events.install(app, database)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        render=lambda path, error, status, error_id: renderer_for(path, ERROR_DIALECTS, DEFAULT_ERRORS)(
            error, status, error_id
        ),
    )
    system.install_observer(app)
    configure_logging(settings.log_level, settings.log_format)
    return app


def app_from_env() -> FastAPI:
    """The factory uvicorn's workers call (``meterbook serve`` points them here)."""
    return create_app()
