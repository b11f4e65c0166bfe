"""The official Cloudflare Python SDK (``cloudflare`` on PyPI) against meterbook's Cloudflare dialect.

The SDK talks HTTP to a real uvicorn server (in a thread, on a free port of 127.0.0.1) serving the
test's app: Starlette's TestClient is an ``httpx2`` client, which the SDK, built on ``httpx``, refuses.
The asynchronous SDK client also runs in-process over ``httpx.ASGITransport``. The data is the one of
``test_cloudflare.py``; what the SDK yields is checked against what the plain HTTP API answers.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
import cloudflare
import httpx
import pytest
from cloudflare.types.user.billing import BillingHistory
from fastapi.testclient import TestClient

from tests.api.test_cloudflare import World, build_world
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


class TestSdkErrors:
    def test_a_bad_token_is_an_authentication_error(self, world: World, base_url: str) -> None:
        with pytest.raises(cloudflare.AuthenticationError) as raised:
            sdk(base_url, api_token="mbk_" + "0" * 32 + "_" + "0" * 48).user.billing.history.list()
        assert raised.value.status_code == 401
        assert raised.value.body == {
            "success": False,
            "errors": [{"code": 10000, "message": "Authentication error"}],
            "messages": [],
            "result": None,
        }

    def test_a_revoked_key_is_an_authentication_error(self, world: World, base_url: str) -> None:
        created = world.tenant.create_key(scopes=["billing:read"])
        assert world.client.delete(f"/v1/api_keys/{created['id']}", headers=world.tenant.headers).status_code == 200
        with pytest.raises(cloudflare.AuthenticationError):
            sdk(base_url, api_token=created["key"]).user.billing.history.list()

    def test_another_email_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        client = sdk(base_url, api_email="ap@initech.example", api_key=world.key("Globex"))
        with pytest.raises(cloudflare.PermissionDeniedError) as raised:
            client.user.billing.history.list()
        assert raised.value.status_code == 403

    def test_an_organization_key_with_an_email_is_a_permission_denied_error(self, world: World, base_url: str) -> None:
        client = sdk(base_url, api_email="billing@globex.example", api_key=world.tenant.key)
        with pytest.raises(cloudflare.PermissionDeniedError):
            client.user.billing.history.list()

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
