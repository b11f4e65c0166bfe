"""Issue 7, item 4: hostile input on every write route, each answered with a clear 4xx and nothing written.

The write routes (every POST, PUT, PATCH and DELETE) come from the application's route table, and a route
without a template in :data:`TEMPLATES` fails under its own name. A template is a valid request and the
fields to poison: a number field and a text field. Each hostile case is sent, and the reply must be the
expected 4xx, in the dialect's error shape, with words that name the problem; and the database must be
exactly as it was before (every row of every table).

Routes without a body (archiving an account, revoking a key, voiding an invoice) ignore what is sent in
one, so for them the hostile values go into the path, where the id is; a body over the limit is refused
before any route is chosen. The console's sign-out takes no input at all: only the size limit applies.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from tests.conftest import bearer
from tests.reliability.test_access_matrix import route_table, snapshot
from tests.reliability.world import FEATURE, PLAN, PRODUCT, WEBHOOK_URL, Org, build_org, plan_body

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
HOLE = "__HOSTILE__"
LIMIT = 64 * 1024  # the body limit of the test settings (tests/conftest.py)


@dataclass(frozen=True)
class Template:
    """A valid request on the seeded world, and where to put hostile values."""

    url: Callable[[Org], str]
    body: Callable[[Org], Any] | None = None  # None: the route takes no body; the path is attacked instead
    number: str = ""  # dotted path of a number field (or any field, where the body has none)
    text: str = ""  # dotted path of a text field
    batch: str = ""  # dotted path of the list capped at 10,000 items, if any
    key: str = "org"  # "org" or "platform"
    form: bool = False  # a console form: only the size limit (and, for sign-in, unreadable input) applies


def frontier_usage() -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "amount": 1, "description": "hostile"}


TEMPLATES: dict[tuple[str, str], Template] = {
    ("POST", "/v1/accounts"): Template(lambda v: "/v1/accounts", lambda v: {"name": "x"}, "net_terms_days", "name"),
    ("PATCH", "/v1/accounts/{account_id}"): Template(
        lambda v: f"/v1/accounts/{v.parent['id']}", lambda v: {"credit_min": 0}, "credit_min", "name"
    ),
    ("DELETE", "/v1/accounts/{account_id}"): Template(lambda v: f"/v1/accounts/{HOLE}"),
    ("POST", "/v1/organizations"): Template(
        lambda v: "/v1/organizations", lambda v: {"name": "x"}, "name", "name", key="platform"
    ),
    ("POST", "/v1/api_keys"): Template(lambda v: "/v1/api_keys", lambda v: {"name": "x"}, "name", "name"),
    ("DELETE", "/v1/api_keys/{key_id}"): Template(lambda v: f"/v1/api_keys/{HOLE}"),
    ("POST", "/v1/projects"): Template(lambda v: "/v1/projects", lambda v: {"name": "x"}, "name", "name"),
    ("POST", "/v1/events"): Template(
        lambda v: "/v1/events",
        lambda v: [{"id": "hostile-1", "account_id": v.parent["id"], "type": "credit", "quantity": 1}],
        "0.quantity",
        "0.description",
        batch="",
    ),
    ("POST", "/v1/accounts/{account_id}/credits"): Template(
        lambda v: f"/v1/accounts/{v.parent['id']}/credits",
        lambda v: {"id": "g-hostile", "amount": 1},
        "amount",
        "description",
    ),
    ("PUT", "/v1/features/{name}"): Template(
        lambda v: "/v1/features/hostile.feature", lambda v: {"default_limit": 1}, "default_limit", "description"
    ),
    ("PUT", "/v1/accounts/{account_id}/limits/{feature}"): Template(
        lambda v: f"/v1/accounts/{v.parent['id']}/limits/{FEATURE}", lambda v: {"limit": 5}, "limit", "limit"
    ),
    ("PUT", "/v1/products/{product_id}"): Template(
        lambda v: "/v1/products/HOSTILE-1",
        lambda v: {"description": "d", "unit_price": "0.5"},
        "unit_price",
        "description",
    ),
    ("PUT", "/v1/plans/{code}"): Template(lambda v: "/v1/plans/hostile", lambda v: plan_body(), "fee", "name"),
    ("PUT", "/v1/accounts/{account_id}/subscription"): Template(
        lambda v: f"/v1/accounts/{v.parent['id']}/subscription", lambda v: {"plan": PLAN}, "plan", "plan"
    ),
    ("DELETE", "/v1/accounts/{account_id}/subscription"): Template(lambda v: f"/v1/accounts/{HOLE}/subscription"),
    ("PUT", "/v1/accounts/{account_id}/prices/{product_id}"): Template(
        lambda v: f"/v1/accounts/{v.parent['id']}/prices/{PRODUCT}",
        lambda v: {"price": {"model": "per_unit", "unit_price": "0.01"}},
        "price.unit_price",
        "price.model",
    ),
    ("POST", "/v1/billing_runs"): Template(
        lambda v: "/v1/billing_runs", lambda v: {"month": v.month}, "month", "month"
    ),
    ("POST", "/v1/invoices/{invoice_id}/void"): Template(lambda v: f"/v1/invoices/{HOLE}/void"),
    ("POST", "/v1/webhook_endpoints"): Template(
        lambda v: "/v1/webhook_endpoints", lambda v: {"url": WEBHOOK_URL}, "enabled", "description"
    ),
    ("PATCH", "/v1/webhook_endpoints/{endpoint_id}"): Template(
        lambda v: f"/v1/webhook_endpoints/{v.webhook_endpoint_id}", lambda v: {"enabled": True}, "enabled", "url"
    ),
    ("DELETE", "/v1/webhook_endpoints/{endpoint_id}"): Template(lambda v: f"/v1/webhook_endpoints/{HOLE}"),
    ("POST", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret"): Template(
        lambda v: f"/v1/webhook_endpoints/{HOLE}/rotate_secret"
    ),
    # The body is optional (default: every endpoint the event went to): the path is attacked.
    ("POST", "/v1/webhook_events/{event_id}/resend"): Template(lambda v: f"/v1/webhook_events/{HOLE}/resend"),
    ("POST", "/v1/alerts"): Template(
        lambda v: "/v1/alerts",
        lambda v: {"type": "usage_above", "threshold": 10, "product_id": PRODUCT},
        # Not the threshold: a month's units may pass 2**63 (docs/alerts.md), so that number is a valid one there;
        # its own bounds are tested in tests/api/test_alerts.py.
        "name",
        "name",
    ),
    ("DELETE", "/v1/alerts/{alert_id}"): Template(lambda v: f"/v1/alerts/{HOLE}"),
    ("POST", "/v1/payments"): Template(
        lambda v: "/v1/payments", lambda v: {"account_id": v.parent["id"], "amount": "1.00"}, "amount", "reference"
    ),
    ("POST", "/v1beta1/organizations/billing/usages"): Template(
        lambda v: "/v1beta1/organizations/billing/usages",
        lambda v: {"org_id": v.id, "billing_id": v.parent["id"], "usages": [frontier_usage()]},
        "usages.0.amount",
        "usages.0.description",
        batch="usages",
    ),
    ("POST", "/v1beta1/organizations/{org_id}/billing/{billing_id}/usages"): Template(
        lambda v: f"/v1beta1/organizations/{v.id}/billing/{v.parent['id']}/usages",
        lambda v: {"usages": [frontier_usage()]},
        "usages.0.amount",
        "usages.0.user_id",
        batch="usages",
    ),
    ("POST", "/v1beta1/billing/check"): Template(
        lambda v: "/v1beta1/billing/check",
        lambda v: {"org_id": v.id, "billing_id": v.parent["id"], "amount": 1},
        "amount",
        "org_id",
    ),
    ("POST", "/v1beta1/organizations/billing/usages/revert"): Template(
        lambda v: "/v1beta1/organizations/billing/usages/revert",
        lambda v: {"org_id": v.id, "billing_id": v.parent["id"], "usage_id": v.usage_id, "amount": 1},
        "amount",
        "usage_id",
    ),
    ("POST", "/v1beta1/admin/organizations/{org_id}/billing/{billing_id}/usage/{usage_id}/revert"): Template(
        lambda v: f"/v1beta1/admin/organizations/{v.id}/billing/{v.parent['id']}/usage/{v.usage_id}/revert",
        lambda v: {"amount": "1"},
        "amount",
        "project_id",
    ),
    ("POST", "/v1beta1/organizations/billing/check"): Template(
        lambda v: "/v1beta1/organizations/billing/check",
        lambda v: {"org_id": v.id, "billing_id": v.parent["id"], "feature": FEATURE},
        "feature",
        "feature",
    ),
    ("POST", "/v1beta1/organizations/{org_id}/billing/{billing_id}/check"): Template(
        lambda v: f"/v1beta1/organizations/{v.id}/billing/{v.parent['id']}/check",
        lambda v: {"feature": FEATURE},
        "feature",
        "feature",
    ),
    ("POST", "/ui/sign-in"): Template(lambda v: "/ui/sign-in", lambda v: {"key": v.key}, form=True),
    ("POST", "/ui/sign-out"): Template(lambda v: "/ui/sign-out", form=True),
    # The console's actions need a session and its form token, which these requests (a bearer key) lack: only
    # the size limit applies here. tests/web/test_console_actions.py sends them hostile forms with a session.
    ("POST", "/ui/accounts/{account_id}/grant"): Template(lambda v: f"/ui/accounts/{v.parent['id']}/grant", form=True),
    ("POST", "/ui/accounts/{account_id}/grant/confirm"): Template(
        lambda v: f"/ui/accounts/{v.parent['id']}/grant/confirm", form=True
    ),
    ("POST", "/ui/accounts/{account_id}/payment"): Template(
        lambda v: f"/ui/accounts/{v.parent['id']}/payment", form=True
    ),
    ("POST", "/ui/accounts/{account_id}/payment/confirm"): Template(
        lambda v: f"/ui/accounts/{v.parent['id']}/payment/confirm", form=True
    ),
    ("POST", "/ui/invoices/{invoice_id}/void/confirm"): Template(
        lambda v: f"/ui/invoices/{v.invoice_id}/void/confirm", form=True
    ),
    ("POST", "/ui/billing-runs"): Template(lambda v: "/ui/billing-runs", form=True),
    ("POST", "/ui/billing-runs/confirm"): Template(lambda v: "/ui/billing-runs/confirm", form=True),
    ("POST", "/ui/keys/new"): Template(lambda v: "/ui/keys/new", form=True),
    ("POST", "/ui/keys/new/confirm"): Template(lambda v: "/ui/keys/new/confirm", form=True),
    ("POST", "/ui/keys/{key_id}/revoke/confirm"): Template(
        lambda v: f"/ui/keys/{v.spare_key_id}/revoke/confirm", form=True
    ),
    ("POST", "/ui/webhook-events/{event_id}/resend/confirm"): Template(
        lambda v: f"/ui/webhook-events/{v.webhook_event_id}/resend/confirm", form=True
    ),
}
# Frontier over ConnectRPC (proto JSON bodies, answered in Connect's error JSON and statuses).
CONNECT = "/raystack.frontier.v1beta1."
CONNECT_ANY_METHOD = f"{CONNECT}{{service}}/{{method}}"
TEMPLATES.update(
    {
        ("POST", f"{CONNECT}FrontierService/CreateBillingUsage"): Template(
            lambda v: f"{CONNECT}FrontierService/CreateBillingUsage",
            lambda v: {"org_id": v.id, "billing_id": v.parent["id"], "usages": [frontier_usage()]},
            "usages.0.amount",
            "usages.0.description",
            batch="usages",
        ),
        ("POST", f"{CONNECT}FrontierService/GetBillingBalance"): Template(
            lambda v: f"{CONNECT}FrontierService/GetBillingBalance",
            lambda v: {"org_id": v.id, "id": v.parent["id"]},
            "id",
            "id",
        ),
        ("POST", f"{CONNECT}FrontierService/ListBillingTransactions"): Template(
            lambda v: f"{CONNECT}FrontierService/ListBillingTransactions",
            lambda v: {"org_id": v.id, "billing_id": v.parent["id"]},
            "billing_id",
            "billing_id",
        ),
        ("POST", f"{CONNECT}FrontierService/TotalDebitedTransactions"): Template(
            lambda v: f"{CONNECT}FrontierService/TotalDebitedTransactions",
            lambda v: {"org_id": v.id, "billing_id": v.parent["id"]},
            "billing_id",
            "billing_id",
        ),
        ("POST", f"{CONNECT}FrontierService/CheckFeatureEntitlement"): Template(
            lambda v: f"{CONNECT}FrontierService/CheckFeatureEntitlement",
            lambda v: {"org_id": v.id, "billing_id": v.parent["id"], "feature": FEATURE},
            "feature",
            "feature",
        ),
        ("POST", f"{CONNECT}FrontierService/CheckCreditEntitlement"): Template(
            lambda v: f"{CONNECT}FrontierService/CheckCreditEntitlement",
            lambda v: {"org_id": v.id, "amount": 1},
            "amount",
            "org_id",
        ),
        ("POST", f"{CONNECT}AdminService/RevertBillingUsage"): Template(
            lambda v: f"{CONNECT}AdminService/RevertBillingUsage",
            lambda v: {"org_id": v.id, "billing_id": v.parent["id"], "usage_id": v.usage_id, "amount": 1},
            "amount",
            "usage_id",
        ),
        # Any other method of the package: Connect's "unimplemented", whatever the body.
        ("POST", CONNECT_ANY_METHOD): Template(
            lambda v: f"{CONNECT}FrontierService/NoSuchMethod", lambda v: {"org_id": v.id}, "org_id", "org_id"
        ),
    }
)
# The native batch is a top-level list: its cap applies to the body itself.
TEMPLATES[("POST", "/v1/events")] = Template(
    lambda v: "/v1/events",
    lambda v: [{"id": "hostile-1", "account_id": v.parent["id"], "type": "credit", "quantity": 1}],
    "0.quantity",
    "0.description",
    batch=".",
)

WRITE_ROUTES = sorted((method, path) for method, path in route_table() if method in WRITE_METHODS)


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES, ids=lambda value: str(value))
def test_every_write_route_has_a_template(method: str, path: str) -> None:
    assert (method, path) in TEMPLATES, f"{method} {path} has no hostile-input template: add one to TEMPLATES"


# --- building the hostile requests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    words: tuple[str, ...]  # the reply must name the problem with one of these (case ignored)
    content: bytes | Iterator[bytes] = b""
    content_type: str = "application/json"
    url_hole: str | None = None  # for routes without a body: what replaces the id in the path
    large_limit: bool = False  # needs a server whose body limit admits 10,001 items


def _put(body: Any, path: str, value: Any) -> Any:
    """``body`` with ``value`` at the dotted ``path`` (list indexes are numbers)."""
    parts = path.split(".")
    target = body
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


def _with_raw(body: Any, path: str, raw: bytes) -> bytes:
    """The JSON text of ``body`` with the raw bytes ``raw`` as the value at ``path``."""
    text = json.dumps(_put(body, path, HOLE)).encode()
    return text.replace(json.dumps(HOLE).encode(), raw)


def _duplicate_key(body: Any) -> bytes:
    """The JSON text of ``body`` with its first object's first key written twice."""
    if isinstance(body, list):
        rest = json.dumps(body[1:])[1:]
        return b"[" + _duplicate_key(body[0]) + (b", " + rest.encode() if body[1:] else b"]")
    name, value = next(iter(body.items()))
    return f"{{{json.dumps(name)}: {json.dumps(value)}, ".encode() + json.dumps(body)[1:].encode()


def _field_words(path: str) -> tuple[str, ...]:
    return (path.rsplit(".", 1)[-1],)


def body_cases(template: Template, victim: Org) -> list[Case]:
    assert template.body is not None
    body = template.body
    num, txt = template.number, template.text
    # A valid request padded with blanks: if anything let it past the limit, it would succeed.
    over = json.dumps(body(victim)).encode() + b" " * LIMIT
    cases = [
        Case("over the size limit", 413, ("limit",), over),
        Case("over the size limit, chunked", 413, ("limit",), iter([over[: LIMIT // 2], over[LIMIT // 2 :]])),
        Case("nested 10,000 deep", 400, ("deep",), _with_raw(body(victim), num, b"[" * 10_000 + b"]" * 10_000)),
        Case("2**63 (beyond int64)", 400, _field_words(num), _with_raw(body(victim), num, str(2**63).encode())),
        Case(
            "-2**63 - 1 (beyond int64)",
            400,
            _field_words(num),
            _with_raw(body(victim), num, str(-(2**63) - 1).encode()),
        ),
        Case("a 5,000-digit integer", 400, ("digit", *_field_words(num)), _with_raw(body(victim), num, b"9" * 5000)),
        Case("1e309", 400, _field_words(num), _with_raw(body(victim), num, b"1e309")),
        Case("-1e309", 400, _field_words(num), _with_raw(body(victim), num, b"-1e309")),
        Case("NaN", 400, ("nan",), _with_raw(body(victim), num, b"NaN")),
        Case("Infinity", 400, ("infinity",), _with_raw(body(victim), num, b"Infinity")),
        Case("-Infinity", 400, ("infinity",), _with_raw(body(victim), num, b"-Infinity")),
        Case("invalid UTF-8", 400, ("utf-8",), _with_raw(body(victim), txt, b'"\xff\xfe\xc3"')),
        Case("an escaped NUL", 400, ("nul",), _with_raw(body(victim), txt, b'"a\\u0000b"')),
        Case("a raw NUL byte", 400, ("control character",), _with_raw(body(victim), txt, b'"a\x00b"')),
        Case(
            "a 60,000-character string",
            400,
            _field_words(txt),
            _with_raw(body(victim), txt, b'"' + b"x" * 60_000 + b'"'),
        ),
        Case("duplicate keys", 400, ("duplicate",), _duplicate_key(body(victim))),
        Case("not JSON", 400, ("json",), b"{'name': 'x'"),
        Case("an empty body", 400, ("body",), b""),
    ]
    valid = json.dumps(body(victim)).encode()
    for content_type in (
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ):
        cases.append(Case(f"content type {content_type}", 400, ("json",), valid, content_type))
    if template.batch:
        whole = body(victim)
        items = whole if template.batch == "." else whole[template.batch]
        many = [{**items[0], "id": str(uuid.uuid4())} for _ in range(10_001)]
        oversized = many if template.batch == "." else {**whole, template.batch: many}
        cases.append(Case("10,001 items", 400, ("10000", "10,000"), json.dumps(oversized).encode(), large_limit=True))
    return cases


PATH_HOLES = {
    "NUL": "%00",
    "invalid UTF-8": "%FF%FE",
    "1e309": "1e309",
    "NaN": "NaN",
    "beyond int64": str(2**64),
    "a 10,000-character id": "a" * 10_000,
}


def path_cases() -> list[Case]:
    over = b"{" + b" " * LIMIT + b"}"
    cases = [Case("over the size limit", 413, ("limit",), over)]
    cases += [Case(f"path id: {name}", 400, ("uuid",), url_hole=hole) for name, hole in PATH_HOLES.items()]
    # An encoded slash is a slash to the router: the path names no route at all.
    cases.append(Case("path id: a traversal", 404, ("no route",), url_hole="..%2F..%2Fetc"))
    return cases


def form_cases(path: str, victim: Org) -> list[Case]:
    over = f"key={victim.key}&pad=".encode() + b"a" * LIMIT  # a valid sign-in, but too large
    cases = [Case("over the size limit", 413, ("limit",), over, "application/x-www-form-urlencoded")]
    if path == "/ui/sign-in":
        for name, content in {"invalid UTF-8": b"key=\xff\xfe", "NUL": b"key=%00", "JSON": b'{"key": 1}'}.items():
            status = 400 if name == "JSON" else 401  # no key at all, or one that is not a key
            cases.append(Case(name, status, ("key",), content, "application/x-www-form-urlencoded"))
    return cases


# --- the dialects' error shapes -------------------------------------------------------------------------


#: Connect's code for each status a hostile request gets (connectrpc.com/docs/protocol#error-codes).
CONNECT_CODES = {400: "invalid_argument", 404: "unimplemented", 415: "invalid_argument", 429: "resource_exhausted"}


def expected_status(path: str, case: Case) -> int:
    """The status ``case`` must get on ``path``: Connect says too large and not JSON its own way."""
    if not path.startswith(CONNECT):
        return case.status
    if path == CONNECT_ANY_METHOD:
        # No method reads the body: only a declared length over the limit is refused before the path is looked at.
        return 429 if case.status == 413 and "chunked" not in case.name else 404
    if case.status == 413:
        return 429  # resource_exhausted
    if case.name.startswith("content type"):
        return 415  # the Connect protocol's answer to a codec it does not speak
    return case.status


def assert_error_shape(path: str, status: int, body: Any) -> None:
    if path.startswith(CONNECT):
        assert set(body) == {"code", "message"}, body
        assert body["code"] == CONNECT_CODES[status], body
    elif path.startswith("/v1beta1/"):
        assert set(body) == {"code", "message", "details"}, body
        assert body["code"] == {400: 3, 413: 3, 404: 5}[status], body
    elif path.startswith("/ui/"):
        return  # the console answers in HTML
    else:
        assert set(body) - {"validationErrors"} == {"error", "id", "note"}, body
        codes = {400: {"BAD_REQUEST", "VALIDATION_FAILED"}, 413: {"BAD_REQUEST"}, 404: {"NOT_FOUND"}}[status]
        assert body["error"] in codes, body


def cases_for(method: str, path: str, victim: Org) -> list[Case]:
    template = TEMPLATES[(method, path)]
    if template.form:
        return form_cases(path, victim)
    if template.body is None:
        return path_cases()
    return body_cases(template, victim)


def test_hostile_input_is_refused_and_writes_nothing(
    client: TestClient, database: Database, settings: Settings, make_tenant: Any, platform_key: str
) -> None:
    victim = build_org(client, make_tenant("Victim"))
    roomy = create_app(settings.model_copy(update={"max_body_bytes": 4 * 1024 * 1024}), database)
    failures: list[str] = []
    count = 0
    before = snapshot(database)
    with TestClient(roomy) as roomy_client:
        for method, path in WRITE_ROUTES:
            template = TEMPLATES[(method, path)]
            headers = bearer(platform_key if template.key == "platform" else victim.key)
            for case in cases_for(method, path, victim):
                url = template.url(victim)
                if case.url_hole is not None:
                    url = url.replace(HOLE, case.url_hole)
                elif HOLE in url:
                    url = url.replace(HOLE, str(uuid.uuid4()))
                sender = roomy_client if case.large_limit else client
                response = sender.request(
                    method,
                    url,
                    content=case.content,
                    headers={**headers, "Content-Type": case.content_type},
                    follow_redirects=False,
                )
                client.cookies.clear()
                count += 1
                problems = []
                status = expected_status(path, case)
                words = ("unimplemented", "not served") if status == 404 and path == CONNECT_ANY_METHOD else case.words
                if response.status_code != status:
                    problems.append(f"expected {status}, got {response.status_code}")
                elif not any(word.lower() in response.text.lower() for word in words):
                    problems.append(f"the reply does not name the problem (one of {words})")
                elif not path.startswith("/ui/"):
                    try:
                        assert_error_shape(path, status, response.json())
                    except AssertionError as error:
                        problems.append(f"not the dialect's error shape: {error}")
                after = snapshot(database)
                if after != before:
                    problems.append("the database changed")
                    before = after
                if problems:
                    failures.append(f"{method} {path}, {case.name}: {'; '.join(problems)}: {response.text[:300]}")
    print(f"\nhostile input: {len(WRITE_ROUTES)} write routes, {count} hostile requests, {len(failures)} not refused")
    assert not failures, "\n".join(failures)
