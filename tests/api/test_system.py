"""Routes about meterbook itself (health, OpenAPI, offline docs) and how ``/v1`` answers unreadable requests."""

from __future__ import annotations

import json
import typing
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from meterbook import __version__
from tests.conftest import Tenant

LIMIT = 64 * 1024  # the test settings' max_body_bytes
FARADAY_ERROR = "#/components/schemas/FaradayError"


def faraday_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert {"error", "id", "note"} <= set(body), body
    assert set(body) <= {"error", "id", "note", "validationErrors"}, body
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert isinstance(body["note"], str)
    assert body["note"]
    if code is not None:
        assert body["error"] == code, body
    return body


def bad_request(response: Any) -> dict[str, Any]:
    body = faraday_error(response, 400, "BAD_REQUEST")
    assert "validationErrors" not in body
    return body


def app_of(client: TestClient) -> FastAPI:
    app = client.app
    assert isinstance(app, FastAPI)
    return app


def api_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute of the app with its full path, also those of included routers.

    Newer FastAPI keeps an included router whole in ``app.routes`` (wrapped, with ``original_router``)
    instead of copying its routes there; walk into it.
    """
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            context = getattr(route, "include_context", None)
            yield from api_routes(route.original_router.routes, prefix + str(getattr(context, "prefix", "")))


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                yield path, method.upper(), operation


def padded_json(size: int) -> bytes:
    """A valid account body of exactly ``size`` bytes (an unknown field carries the padding)."""
    head, tail = b'{"name":"Padded","pad":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestHealth:
    def test_healthz_needs_no_key(self, client: TestClient, backend: str) -> None:
        response = client.get("/healthz")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok", "database": backend, "version": __version__}


class TestOpenApi:
    def test_lists_every_route(self, client: TestClient, document: dict[str, Any]) -> None:
        documented = {(path, method) for path, method, _ in operations(document)}
        routes = list(api_routes(app_of(client).routes))
        hidden = {path for path, route in routes if not route.include_in_schema}
        # The web console's HTML pages are not part of the API, nor is the Connect answer to a method no one serves.
        assert {path for path in hidden if not path.startswith("/ui")} <= {
            "/docs",
            "/raystack.frontier.v1beta1.{service}/{method}",
        }
        expected = {(path, method) for path, route in routes if route.include_in_schema for method in route.methods}
        assert len(expected) >= 13
        assert expected <= documented
        assert ("/v1/accounts/{account_id}", "GET") in documented
        assert ("/v1/api_keys/{key_id}", "DELETE") in documented
        assert ("/v1/organizations", "POST") in documented

    def test_no_422_anywhere(self, document: dict[str, Any]) -> None:
        for path, method, operation in operations(document):
            assert "422" not in operation["responses"], (method, path)
        text = json.dumps(document)
        assert "HTTPValidationError" not in text
        assert '"#/components/schemas/ValidationError"' not in text

    def test_every_v1_operation_documents_faradays_errors(self, document: dict[str, Any]) -> None:
        v1 = [(path, method, op) for path, method, op in operations(document) if path.startswith("/v1/")]
        assert len(v1) >= 12
        for path, method, operation in v1:
            for status in ("400", "401", "403", "404", "500"):
                response = operation["responses"].get(status)
                assert response is not None, (method, path, status)
                assert response["content"]["application/json"]["schema"] == {"$ref": FARADAY_ERROR}, (
                    method,
                    path,
                    status,
                )

    def test_faraday_error_schema(self, document: dict[str, Any]) -> None:
        schema = document["components"]["schemas"]["FaradayError"]
        assert set(schema["required"]) == {"error", "id", "note"}
        assert set(schema["properties"]) == {"error", "id", "note", "validationErrors"}
        codes = set(schema["properties"]["error"]["enum"])
        assert {
            "BAD_REQUEST",
            "VALIDATION_FAILED",
            "MISSING_API_KEY",
            "INVALID_AUTHORIZATION",
            "MALFORMED_API_KEY",
            "EXPIRED_API_KEY",
            "FORBIDDEN",
            "MAX_RESOURCES_REACHED",
            "NOT_FOUND",
            "CONFLICT",
            "INTERNAL_SERVER_ERROR",
        } <= codes

    @pytest.mark.parametrize(
        ("method", "path", "status", "schema", "many"),
        [
            ("GET", "/v1/accounts/{account_id}", "200", "AccountOut", False),
            ("GET", "/v1/accounts/current", "200", "AccountOut", False),
            ("GET", "/v1/accounts", "200", "AccountOut", True),
            ("POST", "/v1/accounts", "201", "AccountOut", False),
            ("PATCH", "/v1/accounts/{account_id}", "200", "AccountOut", False),
            ("DELETE", "/v1/accounts/{account_id}", "202", "AccountOut", False),
            ("POST", "/v1/organizations", "201", "OrganizationOut", False),
            ("POST", "/v1/api_keys", "201", "ApiKeyOut", False),
            ("GET", "/v1/api_keys", "200", "ApiKeyOut", True),
            ("DELETE", "/v1/api_keys/{key_id}", "200", "ApiKeyOut", False),
            ("POST", "/v1/projects", "201", "ProjectOut", False),
            ("GET", "/v1/projects", "200", "ProjectOut", True),
            ("GET", "/v1/plans", "200", "PlanOut", True),
            ("GET", "/v1/plans/{code}", "200", "PlanOut", False),
            ("PUT", "/v1/accounts/{account_id}/subscription", "200", "AccountSubscriptionOut", False),
            ("DELETE", "/v1/accounts/{account_id}/subscription", "200", "AccountSubscriptionOut", False),
            ("GET", "/v1/accounts/{account_id}/subscription", "200", "AccountSubscriptionOut", False),
            ("GET", "/v1/accounts/{account_id}/prices", "200", "NegotiatedPricesOut", False),
            ("GET", "/healthz", "200", "Health", False),
        ],
    )
    def test_success_response_schema(
        self, document: dict[str, Any], method: str, path: str, status: str, schema: str, many: bool
    ) -> None:
        operation = document["paths"][path][method.lower()]
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert success == [status]
        documented = operation["responses"][status]["content"]["application/json"]["schema"]
        ref = {"$ref": f"#/components/schemas/{schema}"}
        if many:
            assert documented["type"] == "array"
            assert documented["items"] == ref
        else:
            assert documented == ref
        assert schema in document["components"]["schemas"]

    def test_every_route_documents_its_response_model(self, client: TestClient, document: dict[str, Any]) -> None:
        checked = 0
        for path, route in api_routes(app_of(client).routes):
            if not route.include_in_schema or route.response_model is None:
                continue
            checked += 1
            model = route.response_model
            many = typing.get_origin(model) is list
            name = typing.get_args(model)[0].__name__ if many else model.__name__
            status = str(route.status_code or 200)
            for method in route.methods:
                response = document["paths"][path][method.lower()]["responses"][status]
                documented = response["content"]["application/json"]["schema"]
                if many:
                    documented = documented["items"]
                assert documented == {"$ref": f"#/components/schemas/{name}"}, (method, path)
        assert checked >= 13

    def test_request_bodies_are_documented(self, document: dict[str, Any]) -> None:
        create = document["paths"]["/v1/accounts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert create == {"$ref": "#/components/schemas/AccountCreate"}
        key = document["paths"]["/v1/api_keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert key == {"$ref": "#/components/schemas/KeyCreate"}


class TestDocs:
    def test_docs_page_uses_local_assets(self, client: TestClient) -> None:
        response = client.get("/docs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "/docs/assets/swagger-ui-bundle.js" in html
        assert "/docs/assets/swagger-ui.css" in html
        assert "/openapi.json" in html
        for cdn in ("cdn.", "jsdelivr", "unpkg", "//"):
            assert cdn not in html.replace("<!DOCTYPE html>", ""), cdn

    @pytest.mark.parametrize(
        ("asset", "content_type", "min_size"),
        [
            ("swagger-ui-bundle.js", "javascript", 100_000),
            ("swagger-ui.css", "text/css", 1000),
            ("favicon-32x32.png", "image/png", 100),
        ],
    )
    def test_assets_are_served(self, client: TestClient, asset: str, content_type: str, min_size: int) -> None:
        response = client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200
        assert content_type in response.headers["content-type"]
        assert len(response.content) > min_size

    def test_bundle_is_swagger_ui(self, client: TestClient) -> None:
        assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text


class TestUnknownRoutes:
    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", "/nope"), ("GET", "/v1/nope"), ("POST", "/v1/nope"), ("GET", "/v1/accounts/a/b/c")],
    )
    def test_unknown_route(self, client: TestClient, tenant: Tenant, method: str, path: str) -> None:
        response = client.request(method, path, headers=tenant.headers)
        faraday_error(response, 404, "NOT_FOUND")

    @pytest.mark.parametrize(
        ("method", "path"),
        [("PUT", "/v1/accounts"), ("DELETE", "/v1/accounts"), ("POST", "/healthz"), ("PATCH", "/v1/api_keys")],
    )
    def test_wrong_method(self, client: TestClient, tenant: Tenant, method: str, path: str) -> None:
        response = client.request(method, path, headers=tenant.headers)
        faraday_error(response, 405)

    def test_wrong_method_says_what_is_allowed(self, client: TestClient, tenant: Tenant) -> None:
        """RFC 9110 §15.5.6: a 405 reply must carry an Allow header."""
        response = client.request("PUT", "/v1/accounts", headers=tenant.headers)
        assert response.status_code == 405
        assert {method.strip() for method in response.headers.get("allow", "").split(",")} == {"GET", "POST"}


class TestUnreadableBodies:
    @pytest.mark.parametrize(
        "content",
        [
            pytest.param(b'{"name": ', id="truncated"),
            pytest.param(b"{'name': 'x'}", id="single-quotes"),
            pytest.param(b'{"name": "x",}', id="trailing-comma"),
            pytest.param(b'{"name": "x", "credit_min": NaN}', id="nan"),
            pytest.param(b'{"name": "x", "credit_min": Infinity}', id="infinity"),
            pytest.param(b'{"name": "x", "credit_min": -Infinity}', id="minus-infinity"),
            pytest.param(b'{"name": "a", "name": "b"}', id="duplicate-keys"),
            pytest.param(
                b'{"name": "x", "branding": {"suppress_from_reports": true, "suppress_from_reports": false}}',
                id="nested-duplicate-keys",
            ),
            pytest.param(b'{"name": "\xff\xfe"}', id="invalid-utf8"),
            pytest.param(b'{"name": "caf\xe9"}', id="latin-1"),
            pytest.param(b"[" * 30_000 + b"]" * 30_000, id="deep-nesting"),
        ],
    )
    def test_refused_as_bad_request(self, client: TestClient, tenant: Tenant, content: bytes) -> None:
        response = client.post(
            "/v1/accounts", content=content, headers={**tenant.headers, "Content-Type": "application/json"}
        )
        bad_request(response)
        assert client.get("/v1/accounts", headers=tenant.headers).json() == []

    def test_array_where_an_object_is_expected(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/accounts", json=[{"name": "x"}], headers=tenant.headers)
        body = faraday_error(response, 400, "VALIDATION_FAILED")
        assert [item["path"] for item in body["validationErrors"]] == ["body"]
        assert client.get("/v1/accounts", headers=tenant.headers).json() == []

    @pytest.mark.parametrize("content", [b'"x"', b"42", b"null", b"true"])
    def test_scalar_where_an_object_is_expected(self, client: TestClient, tenant: Tenant, content: bytes) -> None:
        response = client.post(
            "/v1/accounts", content=content, headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        faraday_error(response, 400)

    def test_missing_body(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/accounts", headers=tenant.headers)
        body = faraday_error(response, 400, "VALIDATION_FAILED")
        assert [item["path"] for item in body["validationErrors"]] == ["body"]

    def test_exact_decimals_are_read_exactly(self, client: TestClient, tenant: Tenant) -> None:
        content = b'{"name": "x", "commitment": {"monthly_cost": 0.3}}'
        response = client.post(
            "/v1/accounts", content=content, headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text
        assert b'"monthly_cost":0.3' in response.content


class TestBodySizeLimit:
    def test_body_at_the_limit_is_accepted(self, client: TestClient, tenant: Tenant) -> None:
        content = padded_json(LIMIT)
        assert len(content) == LIMIT
        response = client.post(
            "/v1/accounts", content=content, headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text

    def test_declared_length_over_the_limit(self, client: TestClient, tenant: Tenant) -> None:
        content = padded_json(LIMIT + 1)
        response = client.post(
            "/v1/accounts", content=content, headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert response.request.headers["content-length"] == str(LIMIT + 1)
        faraday_error(response, 413)
        assert client.get("/v1/accounts", headers=tenant.headers).json() == []

    def test_streamed_body_under_the_limit_is_accepted(self, client: TestClient, tenant: Tenant) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"name": '
            yield b'"streamed"}'

        response = client.post(
            "/v1/accounts", content=chunks(), headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "streamed"

    def test_streamed_body_over_the_limit(self, client: TestClient, tenant: Tenant) -> None:
        content = padded_json(LIMIT + 4096)

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(content), 1024):
                yield content[start : start + 1024]

        response = client.post(
            "/v1/accounts", content=chunks(), headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        faraday_error(response, 413)
        assert client.get("/v1/accounts", headers=tenant.headers).json() == []

    def test_content_length_not_a_number(self, client: TestClient, tenant: Tenant) -> None:
        """A broken Content-Length is a bad request, not a crash (checked below HTTP parsing, at the app)."""
        app = app_of(client)
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b'{"name": "x"}', "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/accounts",
            "raw_path": b"/v1/accounts",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"content-length", b"abc"),
                (b"content-type", b"application/json"),
                (b"authorization", f"Bearer {tenant.key}".encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
            "state": {},
        }
        anyio.run(app, scope, receive, send)
        start = next(message for message in sent if message["type"] == "http.response.start")
        assert start["status"] == 400
        body = json.loads(
            b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
        )
        assert body["error"] == "BAD_REQUEST"
        assert client.get("/v1/accounts", headers=tenant.headers).json() == []
