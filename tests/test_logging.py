"""Structured logs and request ids (issue 8): one JSON object per line, the request id on every line of a
request and in the ``X-Request-Id`` header, and never a key, an auth header or a body in the logs."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.log import configure_logging
from tests.conftest import Tenant, bearer


@pytest.fixture
def logs(client: TestClient) -> Iterator[io.StringIO]:
    """What meterbook logs from here on, as the JSON a log shipper reads."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    yield stream
    configure_logging()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    parsed = []
    for line in stream.getvalue().splitlines():
        entry = json.loads(line)  # every line is one whole JSON object
        assert isinstance(entry, dict)
        parsed.append(entry)
    return parsed


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [entry for entry in lines(stream) if entry["logger"] == "meterbook.access"]


class TestRequestId:
    def test_made_returned_and_logged(self, client: TestClient, tenant: Tenant, logs: io.StringIO) -> None:
        account = tenant.create_account()
        response = client.get(f"/v1/accounts/{account['id']}", headers=tenant.headers)
        assert response.status_code == 200
        request_id = response.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        (entry,) = [line for line in access_lines(logs) if line["request_id"] == request_id]
        assert entry["level"] == "info"
        assert entry["method"] == "GET"
        assert entry["path"] == f"/v1/accounts/{account['id']}"
        assert entry["route"] == "/v1/accounts/{account_id}"
        assert entry["status"] == 200
        assert entry["duration_ms"] >= 0
        assert entry["time"].endswith("Z")

    def test_each_request_has_its_own(self, client: TestClient) -> None:
        ids = {client.get("/healthz").headers["X-Request-Id"] for _ in range(3)}
        assert len(ids) == 3

    def test_a_sane_incoming_id_is_kept(self, client: TestClient, logs: io.StringIO) -> None:
        given = "req-2026.12.06:abc_DEF=1"
        response = client.get("/healthz", headers={"X-Request-Id": given})
        assert response.headers["X-Request-Id"] == given
        assert [entry["request_id"] for entry in access_lines(logs)] == [given]

    @pytest.mark.parametrize("given", ["a" * 129, "two words", 'quote"d', "new\\nline", "", "é"])
    def test_an_unfit_incoming_id_is_replaced(self, client: TestClient, logs: io.StringIO, given: str) -> None:
        response = client.get("/healthz", headers={"X-Request-Id": given.encode()})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
        assert [entry["request_id"] for entry in access_lines(logs)] == [response.headers["X-Request-Id"]]

    def test_on_errors_in_every_dialect(self, client: TestClient, logs: io.StringIO) -> None:
        for path in (
            "/v1/accounts",
            "/v1beta1/billing/check",
            "/express/usage/month",
            "/client/v4/user/billing/history",
        ):
            response = client.get(path)
            assert response.status_code in (400, 401, 405), (path, response.text)
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
        assert len(access_lines(logs)) == 4

    def test_an_unexpected_error_carries_it_on_the_reply_and_the_error_line(
        self, settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(self: Database) -> None:
            raise RuntimeError("the disk is on fire")

        monkeypatch.setattr(Database, "ping", broken)
        with TestClient(create_app(settings, database), raise_server_exceptions=False) as client:
            stream = io.StringIO()
            configure_logging("info", "json", stream=stream)
            try:
                response = client.get("/healthz", headers={"X-Request-Id": "broken-1"})
            finally:
                configure_logging()
        assert response.status_code == 500
        assert response.headers["X-Request-Id"] == "broken-1"
        errors = [entry for entry in lines(stream) if entry["level"] == "error"]
        assert errors
        assert all(entry["request_id"] == "broken-1" for entry in errors)
        assert "the disk is on fire" in errors[0]["exception"]
        (access,) = access_lines(stream)
        assert access["status"] == 500


class TestSecrets:
    def test_no_key_header_or_body_reaches_the_logs(
        self, client: TestClient, tenant: Tenant, logs: io.StringIO
    ) -> None:
        account = tenant.create_account(email="ap@example.com")  # the reply holds a new account key, whole
        created = tenant.create_key(account_id=account["id"])  # and this one too
        secret_body = "body-marker-7f3e"
        client.post("/v1/accounts", json={"name": secret_body}, headers=tenant.headers)
        client.get(
            "/client/v4/user/billing/history",
            headers={"X-Auth-Email": "ap@example.com", "X-Auth-Key": created["key"]},
        )
        client.get("/v1/accounts", headers=bearer(account["api_key"]))
        client.get("/v1/accounts", headers={"Authorization": "Bearer mbk_not_a_real_key"})
        text = logs.getvalue()
        assert len(access_lines(logs)) == 6
        for key in (tenant.key, account["api_key"], created["key"]):
            assert key.rsplit("_", 1)[-1] not in text  # not even the secret part alone
        for secret in ("mbk_not_a_real_key", secret_body):
            assert secret not in text
        assert "ap@example.com" not in text
        assert "Bearer" not in text


class TestQueries:
    """The access line shows the query, but never the value of a parameter that may hold a secret or what a
    person typed about a customer, nor anything that looks like a key or an e-mail address."""

    SENSITIVE = (
        "key",
        "api_key",
        "apiKey",
        "X-Auth-Key",
        "token",
        "access_token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "auth",
        "Authorization",
        "session",
        "sessionid",
        "email",
        "e-mail",
        "q",
        "search",
        "name",
        "account_name",
    )

    def test_sensitive_parameters_are_redacted_and_the_rest_kept(self, client: TestClient, logs: io.StringIO) -> None:
        values = {name: f"value-{index}-7c1e" for index, name in enumerate(self.SENSITIVE)}
        query = "&".join(f"{name}={value}" for name, value in values.items()) + "&page=2&per_page=5&order=type"
        assert client.get(f"/healthz?{query}").status_code == 200
        (entry,) = access_lines(logs)
        assert entry["query"] == (
            "&".join(f"{name}=[redacted]" for name in self.SENSITIVE) + "&page=2&per_page=5&order=type"
        )
        for value in values.values():
            assert value not in logs.getvalue()

    @pytest.mark.parametrize(
        ("query", "logged"),
        [
            ("filter=mbk_0123456789abcdef&page=1", "filter=[redacted]&page=1"),
            ("x=mbk%5F0123456789abcdef", "x=[redacted]"),  # percent-encoded
            ("x=mbk%255F0123456789abcdef", "x=[redacted]"),  # twice
            ("mbk_0123456789abcdef", "[redacted]"),  # a bare parameter
            ("contact=jane.doe%40example.com&month=2026-01", "contact=[redacted]&month=2026-01"),
            ("quantity=3&sequence=2&ids=a&ids=b", "quantity=3&sequence=2&ids=a&ids=b"),
            ("filter=month%20eq%20%272026-01%27", "filter=month%20eq%20%272026-01%27"),
        ],
    )
    def test_keys_and_addresses_are_redacted_whatever_the_parameter(
        self, client: TestClient, logs: io.StringIO, query: str, logged: str
    ) -> None:
        client.get(f"/healthz?{query}")
        (entry,) = access_lines(logs)
        assert entry["query"] == logged
        assert "0123456789abcdef" not in logs.getvalue()
        assert "jane" not in logs.getvalue()

    def test_a_key_pasted_into_the_path_is_redacted(
        self, client: TestClient, tenant: Tenant, logs: io.StringIO
    ) -> None:
        response = client.get(f"/v1/accounts/{tenant.key}", headers=tenant.headers)
        assert response.status_code == 400  # not an account id
        (entry,) = access_lines(logs)
        assert entry["path"] == "/v1/accounts/[redacted]"
        assert entry["message"] == f"GET /v1/accounts/[redacted] {response.status_code}"
        assert tenant.key.rsplit("_", 1)[-1] not in logs.getvalue()

    def test_no_query_no_field(self, client: TestClient, logs: io.StringIO) -> None:
        client.get("/healthz")
        (entry,) = access_lines(logs)
        assert "query" not in entry

    def test_a_console_search_is_not_logged(self, client: TestClient, tenant: Tenant) -> None:
        from tests.web.test_console import signed_in

        tenant.create_account(name="Jane Customer", email="jane@customer.example")
        console = signed_in(client, tenant.key)
        stream = io.StringIO()
        configure_logging("info", "json", stream=stream)
        try:
            found = console.get("/ui/accounts", params={"q": "Jane Customer"})
            by_mail = console.get("/ui/accounts", params={"q": "jane@customer.example"})
        finally:
            configure_logging()
        assert found.status_code == by_mail.status_code == 200
        assert "Jane Customer" in found.text  # the search ran
        assert [entry["query"] for entry in access_lines(stream)] == ["q=[redacted]", "q=[redacted]"]
        assert "Jane" not in stream.getvalue()
        assert "customer.example" not in stream.getvalue()

    def test_uvicorns_own_access_line_is_redacted_too(self, logs: io.StringIO) -> None:
        # What uvicorn logs when its access log is on (it is off under `meterbook serve`, on under plain uvicorn).
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/v1/accounts/mbk_0123456789abcdef?api_key=s3cr3t-7c1e&q=Jane&page=2",
            "1.1",
            200,
        )
        (entry,) = [line for line in lines(logs) if line["logger"] == "uvicorn.access"]
        assert entry["message"] == (
            '127.0.0.1:5000 - "GET /v1/accounts/[redacted]?api_key=[redacted]&q=[redacted]&page=2 HTTP/1.1" 200'
        )
        for secret in ("0123456789abcdef", "s3cr3t-7c1e", "Jane"):
            assert secret not in logs.getvalue()


class TestFormats:
    def test_console_is_readable_text_with_the_request_id(self, client: TestClient) -> None:
        stream = io.StringIO()
        configure_logging("info", "console", stream=stream)
        try:
            response = client.get("/healthz", headers={"X-Request-Id": "console-1"})
        finally:
            configure_logging()
        (line,) = stream.getvalue().splitlines()
        assert "GET /healthz 200" in line
        assert line.endswith("[console-1]")
        assert not line.startswith("{")
        assert response.status_code == 200

    def test_auto_is_json_when_not_a_terminal(self, client: TestClient) -> None:
        stream = io.StringIO()  # not a terminal
        configure_logging("info", "auto", stream=stream)
        try:
            client.get("/healthz")
        finally:
            configure_logging()
        assert [entry["route"] for entry in lines(stream)] == ["/healthz"]

    def test_auto_is_text_on_a_terminal(self, client: TestClient) -> None:
        class Terminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        stream = Terminal()
        configure_logging("info", "auto", stream=stream)
        try:
            client.get("/healthz")
        finally:
            configure_logging()
        assert stream.getvalue().splitlines()[0].split()[1] == "info"
        assert not stream.getvalue().startswith("{")

    def test_the_level_setting_silences_access_lines(self, client: TestClient) -> None:
        stream = io.StringIO()
        configure_logging("warning", "json", stream=stream)
        try:
            client.get("/healthz")
        finally:
            configure_logging()
        assert stream.getvalue() == ""

    def test_log_format_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("METERBOOK_LOG_FORMAT", "json")
        assert Settings().log_format == "json"
        monkeypatch.setenv("METERBOOK_LOG_FORMAT", "xml")
        with pytest.raises(ValueError, match="log_format"):
            Settings()
