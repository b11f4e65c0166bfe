"""The console's alerts page (issue 19): each alert with its rule and scope, and its latest firings, on both
databases; the operator's page (an account key's session never opens it), and empty until alerts exist."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.web.test_console import redirected_to_sign_in, sign_in, signed_in


def ok(response: Any) -> Any:
    assert 200 <= response.status_code < 300, response.text
    return response.json()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_alerts_and_their_firings(client: TestClient, tenant: Tenant) -> None:
    headers = tenant.headers
    ok(client.put("/v1/products/CALLS", json={"description": "Calls", "unit_price": "1"}, headers=headers))
    account = tenant.create_account(name="Initech")
    empty = signed_in(client, tenant.key).get("/ui/alerts")
    assert empty.status_code == 200
    assert "No alerts yet" in empty.text
    assert 'href="/ui/alerts"' in empty.text  # in the navigation
    busy = ok(
        client.post(
            "/v1/alerts",
            json={"name": "Busy month", "type": "usage_above", "threshold": 5, "product_id": "CALLS"},
            headers=headers,
        )
    )
    quiet = ok(
        client.post(
            "/v1/alerts", json={"account_id": account["id"], "type": "spend_above", "threshold": 1000}, headers=headers
        )
    )
    ok(
        client.post(
            "/v1/events",
            json=[
                {"id": "e1", "account_id": account["id"], "type": "metered", "product_id": "CALLS", "quantity": "7.5"}
            ],
            headers=headers,
        )
    )
    page = client.get("/ui/alerts")
    assert page.status_code == 200
    html = page.text
    shown = text_of(html)
    assert "2 alerts" in shown
    busy_card = html[html.index(f'data-alert="{busy["id"]}"') : html.index(f'data-alert="{quiet["id"]}"')]
    assert "Busy month" in busy_card
    assert "every account" in text_of(busy_card)
    assert re.search(
        r"Initech\s*</a>\s*</td>\s*<td[^>]*>\s*\w+ \d{4}\s*</td>\s*<td class=\"num\">7\.5</td>", busy_card
    ), busy_card
    quiet_card = html[html.index(f'data-alert="{quiet["id"]}"') :]
    assert "Not fired yet" in quiet_card
    assert f'href="/ui/accounts/{account["id"]}"' in quiet_card


def test_an_account_key_never_opens_it(client: TestClient, tenant: Tenant) -> None:
    customer = tenant.create_account()["api_key"]
    sign_in(client, customer, "/ui/alerts")  # the console is the operator's: an account key gets no session
    redirected_to_sign_in(client.get("/ui/alerts", follow_redirects=False))
