"""Issue 7, item 5: secrets. Keys are stored only as hashes, never logged, shown whole only once; no reply
ever carries a stack trace or SQL.

Every key of the seeded world is looked for, whole and as its secret part alone: in every text column of
every table, in every log record of every logger (SQL statements and their parameters included, with
SQLAlchemy's engine logging turned on) and in everything written to stdout and stderr while requests
with those keys are handled (good, bad, expired, revoked, and ones that fail inside the server), and in
the reply to every read route after the key was created.
"""

from __future__ import annotations

import base64
import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, Text, select
from sqlalchemy.exc import OperationalError

from meterbook.accounts import keys as key_format
from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.tables import api_keys, metadata
from tests.conftest import bearer
from tests.reliability.test_access_matrix import ROUTES
from tests.reliability.world import Keys, Org, build_bad_keys, build_org, ok

LEAK_MARKERS = ("Traceback", "sqlalchemy", "SELECT ", "INSERT ", 'File "', "psycopg", "sqlite3", "boom-")


class Everything(logging.Handler):
    """Keeps every record of every logger, formatted with its arguments, extra fields and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("httpx", "httpcore")):
            return  # the tests' own HTTP client, which logs the URLs it calls: not meterbook's logs
        exception = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        self.texts.append(f"{record.getMessage()} {record.args!r} {vars(record)!r} {exception}")


@pytest.fixture
def every_log_record() -> Iterator[Everything]:
    """Every logger that exists, and the root, handled at DEBUG (SQL with its parameters included)."""
    handler = Everything()
    names = ["", "meterbook", "uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy.engine", "httpx"]
    names += list(logging.root.manager.loggerDict)
    loggers = {name: logging.getLogger(name) for name in names}
    levels = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.addHandler(handler)
        if name in ("", "meterbook", "sqlalchemy.engine"):
            logger.setLevel(logging.DEBUG if name != "sqlalchemy.engine" else logging.INFO)
    yield handler
    for name, logger in loggers.items():
        logger.removeHandler(handler)
        logger.setLevel(levels[name])


def all_tokens(org: Org, other: Org, bad: Keys) -> list[str]:
    return [
        org.key,
        org.parent_key,
        org.child_key,
        org.sibling_key,
        other.key,
        bad.revoked,
        bad.expired,
        *bad.without.values(),
    ]


def secret_forms(tokens: list[str]) -> set[str]:
    """Each key whole, and its secret alone (which is what a leak of half a key would still give away)."""
    found = set(tokens)
    for token in tokens:
        parsed = key_format.parse_key(token)
        assert parsed is not None, token
        found.add(parsed.secret)
    return found


def basic(token: str) -> dict[str, str]:
    parsed = key_format.parse_key(token)
    assert parsed is not None
    pair = base64.b64encode(f"{parsed.key_id.hex}:{parsed.secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def test_keys_are_stored_only_as_hashes(client: TestClient, database: Database, make_tenant: Any) -> None:
    org = build_org(client, make_tenant("Acme"))
    other = build_org(client, make_tenant("Other"))
    bad = build_bad_keys(client, database, org)
    tokens = all_tokens(org, other, bad)
    secrets = secret_forms(tokens)
    columns_read = 0
    with database.read() as conn:
        for table in metadata.sorted_tables:
            text_columns = [column for column in table.columns if isinstance(column.type, String | Text)]
            for row in conn.execute(select(*text_columns)) if text_columns else ():
                for column, value in zip(text_columns, row, strict=True):
                    columns_read += 1
                    leaked = [secret for secret in secrets if value is not None and secret in str(value)]
                    assert not leaked, f"{table.name}.{column.name} holds a key"
        stored = {row.id: row.secret_hash for row in conn.execute(select(api_keys.c.id, api_keys.c.secret_hash))}
    assert columns_read > 100
    for token in tokens:
        parsed = key_format.parse_key(token)
        assert parsed is not None
        assert stored[parsed.key_id] == key_format.hash_secret(parsed.secret)


def test_no_key_is_ever_logged(
    client: TestClient,
    database: Database,
    settings: Settings,
    make_tenant: Any,
    platform_key: str,
    every_log_record: Everything,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = build_org(client, make_tenant("Acme"))
    other = build_org(client, make_tenant("Other"))
    bad = build_bad_keys(client, database, org)
    created = ok(client.post("/v1/api_keys", json={"name": "fresh"}, headers=bearer(org.key)))["key"]
    new_org = ok(client.post("/v1/organizations", json={"name": "New"}, headers=bearer(platform_key)))
    tokens = [*all_tokens(org, other, bad), created, new_org["api_key"]["key"], platform_key]
    parent, victim_id = org.parent["id"], other.parent["id"]
    wrong_secret = key_format.token_for(uuid.UUID(hex=key_format.parse_key(org.key).key_id.hex), "0" * 48)  # type: ignore[union-attr]
    with TestClient(create_app(settings, database), raise_server_exceptions=False) as failing:
        calls: list[tuple[str, str, dict[str, str], Any]] = [
            ("GET", "/v1/accounts", bearer(org.key), None),
            ("GET", f"/v1/accounts/{victim_id}", bearer(org.key), None),  # 404
            (
                "POST",
                "/v1/events",
                bearer(org.parent_key),
                [{"id": "x", "account_id": victim_id, "type": "credit", "quantity": 1}],
            ),
            ("GET", "/v1/accounts", bearer(wrong_secret), None),
            ("GET", "/v1/accounts", bearer(org.key + "0"), None),  # malformed
            ("GET", "/v1/accounts", bearer(bad.revoked), None),
            ("GET", "/v1/accounts", bearer(bad.expired), None),
            ("GET", "/v1/accounts", bearer(bad.without["accounts:read"]), None),
            ("GET", "/v1/accounts", {"Authorization": org.key}, None),  # no scheme
            ("GET", f"/v1beta1/organizations/{org.id}/billing/{parent}/balance", basic(org.key), None),
            ("GET", f"/v1beta1/organizations/{org.id}/billing/{parent}/balance", basic(wrong_secret), None),
            (
                "GET",
                "/client/v4/user/billing/history",
                {"X-Auth-Email": org.parent["email"], "X-Auth-Key": org.parent_key},
                None,
            ),
            (
                "GET",
                "/client/v4/user/billing/history",
                {"X-Auth-Email": "no@example.com", "X-Auth-Key": org.parent_key},
                None,
            ),
            ("GET", "/express/usage/month", bearer(org.sibling_key), None),
            # A key pasted into a URL by mistake: the access log must not keep it either.
            ("GET", f"/healthz?api_key={org.key}", {}, None),
            ("GET", f"/v1/accounts?key={org.sibling_key}", bearer(org.key), None),
        ]
        for method, url, headers, body in calls:
            failing.request(method, url, headers=headers, json=body)
        failing.post("/ui/sign-in", data={"key": org.key})
        failing.post("/ui/sign-in", data={"key": wrong_secret})
        failing.cookies.clear()

        def boom(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("boom-unexpected")

        monkeypatch.setattr("meterbook.accounts.service.list_accounts", boom)
        assert failing.get("/v1/accounts", headers=bearer(org.key)).status_code == 500
    out, err = capfd.readouterr()
    written = "\n".join([out, err, *every_log_record.texts])
    assert "boom-unexpected" in written, "the forced failure was not logged, so the logs were not captured"
    assert any("SELECT" in text for text in every_log_record.texts), "SQL was not logged, so it was not searched"
    leaked = sorted(secret[:12] for secret in secret_forms(tokens) if secret in written)
    assert not leaked, f"keys in the logs: {leaked}"


# --- no stack trace, no SQL in any reply --------------------------------------------------------------------


def _sql_error(*_args: Any, **_kwargs: Any) -> Any:
    raise OperationalError("SELECT secret FROM api_keys WHERE id = ?", ("boom-parameter",), Exception("boom-driver"))


def _plain_error(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError('boom-runtime: Traceback File "x.py"')


FAILURES: dict[str, tuple[str, str, Callable[[Org], str]]] = {
    "Faraday": ("meterbook.accounts.service.list_accounts", "GET", lambda o: "/v1/accounts"),
    "native": ("meterbook.ledger.service.balance", "GET", lambda o: f"/v1/accounts/{o.parent['id']}/credits"),
    "Frontier": (
        "meterbook.ledger.service.balance",
        "GET",
        lambda o: f"/v1beta1/organizations/{o.id}/billing/{o.parent['id']}/balance",
    ),
    "Talkdesk": ("meterbook.aggregates.service.search", "GET", lambda o: "/express/usage/month"),
    "Cloudflare": ("meterbook.invoicing.service.history", "GET", lambda o: "/client/v4/user/billing/history"),
}


@pytest.mark.parametrize("error", [_sql_error, _plain_error], ids=["sql", "runtime"])
def test_an_internal_error_shows_no_trace_and_no_sql(
    error: Any,
    client: TestClient,
    database: Database,
    settings: Settings,
    make_tenant: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = build_org(client, make_tenant("Acme"))
    with TestClient(create_app(settings, database), raise_server_exceptions=False) as failing:
        for dialect, (target, method, url) in FAILURES.items():
            with monkeypatch.context() as patch:
                patch.setattr(target, error)
                response = failing.request(method, url(org), headers=bearer(org.key))
            assert response.status_code == 500, (dialect, response.text)
            shown = [marker for marker in LEAK_MARKERS if marker.lower() in response.text.lower()]
            assert not shown, f"{dialect}: the 500 reply shows {shown}: {response.text}"
            body = response.json()
            assert body != {}, dialect
            assert any(key in body for key in ("error", "code", "success")), (dialect, body)


def test_a_reply_carries_no_trace_on_a_bad_request(client: TestClient, make_tenant: Any) -> None:
    org = build_org(client, make_tenant("Acme"))
    for body in (b"{", b'{"name": NaN}', b"[" * 5000):
        response = client.post(
            "/v1/accounts", content=body, headers={**bearer(org.key), "Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        shown = [marker for marker in LEAK_MARKERS if marker.lower() in response.text.lower()]
        assert not shown, response.text


# --- the whole key is shown once -------------------------------------------------------------------------------


def test_the_whole_key_is_shown_only_in_the_reply_that_made_it(
    client: TestClient, database: Database, make_tenant: Any, platform_key: str
) -> None:
    org = build_org(client, make_tenant("Acme"))
    other = build_org(client, make_tenant("Other"))
    bad = build_bad_keys(client, database, org)
    made = client.post("/v1/api_keys", json={"name": "once", "account_id": org.parent["id"]}, headers=bearer(org.key))
    token = ok(made, 201)["key"]
    assert key_format.parse_key(token) is not None, "the creating reply shows the whole key"
    tokens = [*all_tokens(org, other, bad), token]
    secrets = secret_forms(tokens)
    listed = ok(client.get("/v1/api_keys", headers=bearer(org.key)))
    masks = {item["id"]: item["key"] for item in listed}
    assert masks[ok(made, 201)["id"]] == key_format.mask(token)
    assert ok(client.get(f"/v1/accounts/{org.parent['id']}", headers=bearer(org.key)))["api_key"] == key_format.mask(
        org.parent_key
    )
    read = 0
    for (method, path), row in ROUTES.items():
        if method not in ("GET", "HEAD") or row.console:
            continue
        url, _ = row.call(org)
        owner = {"org": org.key, "parent": org.parent_key, "platform": platform_key}[row.owner_key]
        response = client.request(method, url, headers=bearer(owner))
        read += 1
        shown = [secret[:12] for secret in secrets if secret in response.text]
        assert not shown, f"{method} {path} shows a key after it was made: {shown}"
    assert read >= 25
