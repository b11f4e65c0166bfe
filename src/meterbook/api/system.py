"""Routes about meterbook itself: health, the OpenAPI document and its offline Swagger UI."""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from meterbook import __version__
from meterbook.api.routing import ExactJSONResponse, database

__all__ = ["install_docs", "router"]

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str
    database: str
    version: str


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> ExactJSONResponse:
    """Liveness and database reachability; needs no key."""
    db = database(request)
    db.ping()
    return ExactJSONResponse({"status": "ok", "database": db.dialect, "version": __version__})


def _without_default_422(schema: dict[str, Any]) -> dict[str, Any]:
    """meterbook answers bad input with 400 in each dialect's shape, never FastAPI's 422: drop it from the document."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def install_docs(app: FastAPI) -> None:
    """``/openapi.json`` and ``/docs``, whose Swagger UI assets meterbook serves itself (no CDN)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = _without_default_422(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="meterbook API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )
