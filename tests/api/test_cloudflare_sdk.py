"""The official Cloudflare Python SDK (``cloudflare`` on PyPI) against meterbook's Cloudflare dialect.

The SDK talks HTTP to a real uvicorn server (in a thread, on a free port of 127.0.0.1) serving the
test's app: Starlette's TestClient is an ``httpx2`` client, which the SDK, built on ``httpx``, refuses.
The asynchronous SDK client also runs in-process over ``httpx.ASGITransport``. The data is the one of
``test_cloudflare.py``; what the SDK yields is checked against what the plain HTTP API answers.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import cloudflare
import httpx
import pytest
from cloudflare.types.user.billing import BillingHistory
from fastapi.testclient import TestClient

from meterbook.db import Database
from tests.api.test_cloudflare import World, build_world, expire
from tests.conftest import Tenant
from tests.helpers import ts
from tests.live import serving

# The SDK marks the user billing history as deprecated (Cloudflare did so); it still serves it.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")

#: What the SDK would read from the environment instead of what a test passes it.
SDK_ENVIRONMENT = (
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_API_KEY",
    "CLOUDFLARE_EMAIL",
    "CLOUDFLARE_API_USER_SERVICE_KEY",
    "CLOUDFLARE_BASE_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SDK_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def base_url(client: TestClient) -> Iterator[str]:
    """The test's app served by uvicorn on a free port; the SDK's base URL (``…/client/v4``)."""
    with serving(client.app, "uvicorn-cloudflare-sdk") as url:
        yield f"{url}/client/v4"


@pytest.fixture
def world(client: TestClient, tenant: Tenant, other_tenant: Tenant) -> World:
    return build_world(client, tenant, other_tenant)


def sdk(base_url: str, **credentials: str) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(base_url=base_url, max_retries=0, timeout=30, **credentials)


def assert_parsed(found: list[BillingHistory], expected: list[dict[str, Any]]) -> None:
    """The SDK's items are the API's, in the same order, each field parsed into its Python type."""
    assert [item.id for item in found] == [item["id"] for item in expected]
    for item, raw in zip(found, expected, strict=True):
        assert isinstance(item, BillingHistory)
        assert (item.type, item.action, item.description, item.currency) == (
            raw["type"],
            raw["action"],
            raw["description"],
            raw["currency"],
        )
        assert isinstance(item.occurred_at, datetime)
        assert item.occurred_at.utcoffset() is not None
        assert item.occurred_at == ts(raw["occurred_at"])
        # The SDK reads amounts as floats; the shortest repr of each is the exact decimal meterbook wrote.
        assert isinstance(item.amount, float)
        assert Decimal(repr(item.amount)) == raw["amount"]
        assert item.zone.name == raw["zone"]["name"]


class TestSdkPaging:
    def test_bearer_token_auto_paging_yields_every_item_once_in_order(self, world: World, base_url: str) -> None:
        expected = world.items()
        assert len(expected) == 11
        first = sdk(base_url, api_token=world.tenant.key).user.billing.history.list(per_page=5)
        assert first.result_info is not None
        assert (first.result_info.page, first.result_info.per_page, first.result_info.count) == (1, 5, 5)
        assert (first.result_info.total_count, first.result_info.total_pages) == (11, 3)
        items = list(first)
        assert len({item.id for item in items}) == 11
        assert_parsed(items, expected)

    def test_pages_as_the_sdk_walks_them(self, world: World, base_url: str) -> None:
        pages = list(sdk(base_url, api_token=world.tenant.key).user.billing.history.list(per_page=5).iter_pages())
        # The SDK stops at the first empty page: the one past the end, which is a success with no result.
        assert [len(page.result) for page in pages] == [5, 5, 1, 0]
        assert [page.result_info.page for page in pages if page.result_info is not None] == [1, 2, 3, 4]
        assert_parsed([item for page in pages for item in page.result], world.items())

    def test_order_and_filters(self, world: World, base_url: str) -> None:
        client = sdk(base_url, api_token=world.tenant.key)
        for params in (
            {"order": "type"},
            {"order": "action", "type": "charge"},
            {"order": "occurred_at", "action": "payment"},
            {"type": "refund"},
        ):
            found = list(client.user.billing.history.list(per_page=5, **params))
            assert_parsed(found, world.items(**params))
            assert found

    def test_an_aware_datetime_filter(self, world: World, base_url: str) -> None:
        since = ts(f"{world.months[1]}-25T00:00:00Z")
        assert since.tzinfo is not None
        found = list(sdk(base_url, api_token=world.tenant.key).user.billing.history.list(per_page=5, occurred_at=since))
        expected = world.items(occurred_at=f"{world.months[1]}-25T00:00:00Z")
        assert len(expected) == 10
        assert_parsed(found, expected)

    def test_a_naive_datetime_filter_is_read_as_utc(self, world: World, base_url: str) -> None:
        # The SDK writes a naive datetime with isoformat(), without an offset: it means UTC, as an aware one would.
        client = sdk(base_url, api_token=world.tenant.key)
        since = datetime.fromisoformat(f"{world.months[1]}-25T00:00:00")
        assert since.tzinfo is None
        found = list(client.user.billing.history.list(per_page=5, occurred_at=since))
        expected = world.items(occurred_at=f"{world.months[1]}-25T00:00:00Z")
        assert len(expected) == 10
        assert_parsed(found, expected)
        payment = next(item for item in world.items() if item["description"] == "Payment wire-1")
        at = ts(payment["occurred_at"]).replace(tzinfo=None)
        assert payment["id"] in [item.id for item in client.user.billing.history.list(per_page=50, occurred_at=at)]
        later = at + timedelta(microseconds=1)
        assert payment["id"] not in [
            item.id for item in client.user.billing.history.list(per_page=50, occurred_at=later)
        ]

    def test_float_paging_parameters(self, world: World, base_url: str) -> None:
        # The SDK types page and per_page as float: 1.0, then 2.0, 3.0… go out as such and must be accepted.
        found = list(sdk(base_url, api_token=world.tenant.key).user.billing.history.list(page=1.0, per_page=5.0))
        assert_parsed(found, world.items())

    def test_email_and_key(self, world: World, base_url: str) -> None:
        client = sdk(base_url, api_email="BILLING@globex.example", api_key=world.key("Globex"))
        found = list(client.user.billing.history.list(per_page=5))
        assert len(found) == 8
        assert {item.zone.name for item in found} == {"Globex", "Globex Labs"}
        assert_parsed(found, world.items(world.key("Globex")))

    def test_an_account_token_sees_its_subtree_only(self, world: World, base_url: str) -> None:
        found = list(sdk(base_url, api_token=world.key("Globex Labs")).user.billing.history.list(per_page=5))
        assert_parsed(found, world.items(world.key("Globex Labs")))
        assert {item.zone.name for item in found} == {"Globex Labs"}


UNKNOWN_KEY = "mbk_" + "0" * 32 + "_" + "0" * 48


def refusal(code: int, message: str, *chain: tuple[int, str]) -> dict[str, Any]:
    """The body of a refusal of credentials, as the SDK hands it over."""
    error: dict[str, Any] = {"code": code, "message": message}
    if chain:
        error["error_chain"] = [{"code": entry, "message": text} for entry, text in chain]
    return {"success": False, "errors": [error], "messages": [], "result": None}


MISSING = refusal(9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
INVALID_ACCESS_TOKEN = refusal(9109, "Invalid access token")
UNKNOWN_KEY_OR_EMAIL = refusal(9103, "Unknown X-Auth-Key or X-Auth-Email")
NOT_PERMITTED = refusal(10000, "Authentication error")


def bad_headers(*chain: tuple[int, str]) -> dict[str, Any]:
    return refusal(6003, "Invalid request headers", *chain)


def refused(client: cloudflare.Cloudflare, kind: type[cloudflare.APIStatusError]) -> cloudflare.APIStatusError:
    """What the SDK raises on listing the history with ``client``: exactly an exception of class ``kind``."""
    with pytest.raises(cloudflare.APIStatusError) as raised:
        client.user.billing.history.list()
    assert type(raised.value) is kind, raised.value
    return raised.value


class TestSdkErrors:
    """Each refusal raises the exception class it raises against Cloudflare (docs/decisions.md)."""

    def test_no_credentials_at_all_is_a_bad_request_error(self, world: World, base_url: str) -> None:
        # The SDK sends a request without credentials only when told that one is left out on purpose.
        client = sdk(base_url)
        with pytest.raises(cloudflare.BadRequestError) as raised:
            client.user.billing.history.list(extra_headers={"Authorization": cloudflare.Omit()})
        assert (raised.value.status_code, raised.value.body) == (400, MISSING)

    def test_a_key_without_its_email_is_a_bad_request_error(self, world: World, base_url: str) -> None:
        error = refused(sdk(base_url, api_key=world.key("Globex")), cloudflare.BadRequestError)
        assert (error.status_code, error.body) == (400, MISSING)

    @pytest.mark.parametrize("token", ["abc-def", "0123456789abcdef0123456789abcdef01234", UNKNOWN_KEY + "0"])
    def test_a_token_of_the_wrong_format_is_a_bad_request_error(self, world: World, base_url: str, token: str) -> None:
        error = refused(sdk(base_url, api_token=token), cloudflare.BadRequestError)
        assert (error.status_code, error.body) == (400, bad_headers((6111, "Invalid format for Authorization header")))

    def test_a_key_of_the_wrong_format_is_a_bad_request_error(self, world: World, base_url: str) -> None:
        client = sdk(base_url, api_email="billing@globex.example", api_key="0123456789abcdef0123456789abcdef01234")
        error = refused(client, cloudflare.BadRequestError)
        assert error.body == bad_headers((6103, "Invalid format for X-Auth-Key header"))

    def test_an_email_of_the_wrong_format_is_a_bad_request_error(self, world: World, base_url: str) -> None:
        error = refused(sdk(base_url, api_email="billing", api_key=world.key("Globex")), cloudflare.BadRequestError)
        assert error.body == bad_headers((6102, "Invalid format for X-Auth-Email header"))

    def test_both_of_the_wrong_format_are_one_bad_request_error(self, world: World, base_url: str) -> None:
        error = refused(sdk(base_url, api_email="billing", api_key="junk"), cloudflare.BadRequestError)
        assert error.body == bad_headers(
            (6102, "Invalid format for X-Auth-Email header"), (6103, "Invalid format for X-Auth-Key header")
        )

    def test_an_unknown_token_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        error = refused(sdk(base_url, api_token=UNKNOWN_KEY), cloudflare.PermissionDeniedError)
        assert (error.status_code, error.body) == (403, INVALID_ACCESS_TOKEN)

    def test_a_revoked_token_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        created = world.tenant.create_key(scopes=["billing:read"])
        assert len(list(sdk(base_url, api_token=created["key"]).user.billing.history.list(per_page=50))) == 11
        assert world.client.delete(f"/v1/api_keys/{created['id']}", headers=world.tenant.headers).status_code == 200
        error = refused(sdk(base_url, api_token=created["key"]), cloudflare.PermissionDeniedError)
        assert error.body == INVALID_ACCESS_TOKEN

    def test_an_expired_token_is_a_permission_denied_error(
        self, world: World, base_url: str, database: Database
    ) -> None:
        created = world.tenant.create_key(expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
        assert len(list(sdk(base_url, api_token=created["key"]).user.billing.history.list(per_page=50))) == 11
        expire(database, created["id"])
        error = refused(sdk(base_url, api_token=created["key"]), cloudflare.PermissionDeniedError)
        assert error.body == INVALID_ACCESS_TOKEN

    def test_an_unknown_key_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        client = sdk(base_url, api_email="billing@globex.example", api_key=UNKNOWN_KEY)
        error = refused(client, cloudflare.PermissionDeniedError)
        assert (error.status_code, error.body) == (403, UNKNOWN_KEY_OR_EMAIL)

    def test_a_revoked_key_with_its_email_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        created = world.tenant.create_key(account_id=world.accounts["Globex"]["id"])
        client = sdk(base_url, api_email="billing@globex.example", api_key=created["key"])
        assert len(list(client.user.billing.history.list(per_page=50))) == 8
        assert world.client.delete(f"/v1/api_keys/{created['id']}", headers=world.tenant.headers).status_code == 200
        assert refused(client, cloudflare.PermissionDeniedError).body == UNKNOWN_KEY_OR_EMAIL

    def test_another_email_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        client = sdk(base_url, api_email="ap@initech.example", api_key=world.key("Globex"))
        error = refused(client, cloudflare.PermissionDeniedError)
        assert (error.status_code, error.body) == (403, UNKNOWN_KEY_OR_EMAIL)

    def test_an_organization_key_with_an_email_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        client = sdk(base_url, api_email="billing@globex.example", api_key=world.tenant.key)
        assert refused(client, cloudflare.PermissionDeniedError).body == UNKNOWN_KEY_OR_EMAIL

    def test_a_token_without_billing_read_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        key = world.tenant.create_key(scopes=["usage:read", "accounts:read"])["key"]
        error = refused(sdk(base_url, api_token=key), cloudflare.PermissionDeniedError)
        assert (error.status_code, error.body) == (403, NOT_PERMITTED)

    def test_a_key_without_billing_read_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        key = world.tenant.create_key(scopes=["usage:read"], account_id=world.accounts["Globex"]["id"])["key"]
        client = sdk(base_url, api_email="billing@globex.example", api_key=key)
        assert refused(client, cloudflare.PermissionDeniedError).body == NOT_PERMITTED

    def test_a_platform_key_is_a_permission_denied_error(self, world: World, base_url: str, platform_key: str) -> None:
        assert refused(sdk(base_url, api_token=platform_key), cloudflare.PermissionDeniedError).body == NOT_PERMITTED

    def test_another_organizations_key_sees_only_its_own(self, world: World, base_url: str) -> None:
        found = list(sdk(base_url, api_token=world.other.key).user.billing.history.list(per_page=5))
        assert_parsed(found, world.items(world.other.key))
        assert {item.zone.name for item in found} == {"Stranger"}
        # Stranger shares Globex's e-mail: with that e-mail, its key still sees its own items only.
        client = sdk(base_url, api_email="billing@globex.example", api_key=world.key("Stranger"))
        assert [item.id for item in client.user.billing.history.list(per_page=5)] == [item.id for item in found]

    def test_a_bad_parameter_is_a_bad_request_error(self, world: World, base_url: str) -> None:
        with pytest.raises(cloudflare.BadRequestError) as raised:
            sdk(base_url, api_token=world.tenant.key).user.billing.history.list(per_page=4)
        assert raised.value.status_code == 400
        body = raised.value.body
        assert isinstance(body, dict)
        (error,) = body["errors"]
        assert (error["code"], error["message"]) == (6008, "Invalid request parameters")
        assert error["error_chain"][0]["message"].startswith("per_page: ")

    def test_an_unknown_path_is_a_not_found_error(self, world: World, base_url: str) -> None:
        with pytest.raises(cloudflare.NotFoundError) as raised:
            sdk(base_url, api_token=world.tenant.key).get("/user/billing/nothing", cast_to=object)
        assert raised.value.body == {
            "success": False,
            "errors": [{"code": 7003, "message": "No route for the URI"}],
            "messages": [],
            "result": None,
        }


class TestAsyncSdkInProcess:
    def test_auto_paging_over_asgi(self, world: World, client: TestClient) -> None:
        expected = world.items()

        async def walk() -> list[BillingHistory]:
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport) as http_client:
                sdk_client = cloudflare.AsyncCloudflare(
                    api_token=world.tenant.key,
                    base_url="http://testserver/client/v4",
                    http_client=http_client,
                    max_retries=0,
                )
                return [item async for item in sdk_client.user.billing.history.list(per_page=5)]

        assert_parsed(anyio.run(walk), expected)
