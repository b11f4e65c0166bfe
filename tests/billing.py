"""Shared setup for the tests of billing runs, invoices and payments (CONTRACT §4).

Months are computed from today (UTC), so that the tests keep working as time passes: ``months_ago(1)``
is the last month that has ended. Money in replies is read as exact ``Decimal`` (never floats).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.conftest import Tenant, bearer

INVOICE_FIELDS = {
    "id",
    "number",
    "account_id",
    "currency",
    "month",
    "status",
    "amount",
    "amount_paid",
    "amount_due",
    "issued_at",
    "effective_date",
    "due_date",
    "overdue",
    "paid_at",
    "voided_at",
    "lines",
}
LINE_FIELDS = {
    "line",
    "kind",
    "product_id",
    "description",
    "quantity",
    "unit_price",
    "unrounded_amount",
    "amount",
    "tiers",
}
PAYMENT_FIELDS = {
    "id",
    "account_id",
    "amount",
    "currency",
    "date",
    "invoice_id",
    "reference",
    "applied",
    "unapplied",
    "created_at",
}
#: Where a product's first price starts in these tests: before any month they use.
LONG_AGO = "2000-01-01T00:00:00Z"


def month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def month_of_index(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_ago(count: int) -> str:
    """``YYYY-MM`` of the month ``count`` months before the current one (UTC); 0 is the current month."""
    now = datetime.now(UTC)
    return month_of_index(now.year * 12 + now.month - 1 - count)


def following(month: str, count: int = 1) -> str:
    return month_of_index(month_index(month) + count)


def at(month: str, day: int = 10, time: str = "12:00:00") -> str:
    """An RFC 3339 instant in ``month``."""
    return f"{month}-{day:02d}T{time}Z"


def start_of(month: str) -> str:
    return f"{month}-01T00:00:00Z"


def due_after(month: str, days: int) -> str:
    """The first instant after ``month`` plus ``days`` days: an invoice's due date for those net terms."""
    year, number = (int(part) for part in following(month).split("-"))
    return (datetime(year, number, 1, tzinfo=UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def exact(response: Any) -> Any:
    """The body with every number with a fraction read as an exact ``Decimal``."""
    return json.loads(response.text, parse_float=Decimal)


class Billing:
    """One organization's money, through the native API: catalog, usage, billing runs, invoices, payments."""

    def __init__(self, tenant: Tenant, key: str | None = None) -> None:
        self.tenant = tenant
        self.client = tenant.client
        self.key = key or tenant.key

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)

    def as_key(self, key: str) -> Billing:
        return Billing(self.tenant, key)

    # --- setup ---

    def account(self, **body: Any) -> dict[str, Any]:
        return self.tenant.create_account(**body)

    def product(
        self,
        product_id: str,
        unit_price: Any,
        currency: str = "USD",
        *,
        description: str | None = None,
        effective_from: str = LONG_AGO,
    ) -> None:
        body = {
            "description": description or f"Product {product_id}",
            "type": "OTHER",
            "unit": "unit",
            "currency": currency,
            "unit_price": str(unit_price),
            "price_effective_from": effective_from,
        }
        response = self.client.put(f"/v1/products/{product_id}", json=body, headers=self.headers)
        assert response.status_code in (200, 201), response.text

    def send(self, events: list[dict[str, Any]]) -> Any:
        return self.client.post("/v1/events", json=events, headers=self.headers)

    def use(self, account: dict[str, Any], product_id: str, quantity: Any, occurred_at: str, **extra: Any) -> str:
        """One metered event, accepted; its id."""
        event = metered(account, product_id, quantity, occurred_at, **extra)
        response = self.send([event])
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 1, "duplicates": 0}
        return str(event["id"])

    # --- billing runs and invoices ---

    def run(self, month: str) -> Any:
        return self.client.post("/v1/billing_runs", json={"month": month}, headers=self.headers)

    def billed(self, month: str, status: int = 201) -> dict[str, Any]:
        response = self.run(month)
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"month", "invoice_count", "created_at", "created"}, body
        assert body["month"] == month
        assert body["created"] is (status == 201)
        return body

    def list(self, **params: Any) -> Any:
        return self.client.get("/v1/invoices", params=params, headers=self.headers)

    def invoices(self, **params: Any) -> list[dict[str, Any]]:
        response = self.list(**params)
        assert response.status_code == 200, response.text
        body = exact(response)
        assert set(body) == {"invoices"}, body
        for invoice in body["invoices"]:
            assert set(invoice) == INVOICE_FIELDS, invoice
            assert invoice["lines"] is None
        found: list[dict[str, Any]] = body["invoices"]
        return found

    def get(self, invoice_id: Any) -> Any:
        return self.client.get(f"/v1/invoices/{invoice_id}", headers=self.headers)

    def invoice(self, invoice_id: Any) -> dict[str, Any]:
        response = self.get(invoice_id)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = exact(response)
        assert set(body) == INVOICE_FIELDS, body
        for line in body["lines"]:
            assert set(line) == LINE_FIELDS, line
        return body

    def invoices_in_full(self, **params: Any) -> list[dict[str, Any]]:
        return [self.invoice(invoice["id"]) for invoice in self.invoices(**params)]

    def void(self, invoice_id: Any) -> Any:
        return self.client.post(f"/v1/invoices/{invoice_id}/void", headers=self.headers)

    # --- payments ---

    def pay(self, account: dict[str, Any] | str, amount: Any, **extra: Any) -> Any:
        account_id = account if isinstance(account, str) else account["id"]
        body = {"account_id": account_id, "amount": amount, **extra}
        return self.client.post("/v1/payments", json=body, headers=self.headers)

    def paid(self, account: dict[str, Any] | str, amount: Any, **extra: Any) -> dict[str, Any]:
        response = self.pay(account, amount, **extra)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = exact(response)
        assert set(body) == PAYMENT_FIELDS, body
        return body

    def payments(self, account: dict[str, Any] | str | None = None) -> list[dict[str, Any]]:
        params = {} if account is None else {"account_id": account if isinstance(account, str) else account["id"]}
        response = self.client.get("/v1/payments", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        body = exact(response)
        assert set(body) == {"payments"}, body
        for payment in body["payments"]:
            assert set(payment) == PAYMENT_FIELDS, payment
        found: list[dict[str, Any]] = body["payments"]
        return found


def metered(account: dict[str, Any], product_id: str, quantity: Any, occurred_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": extra.pop("id", f"e-{uuid.uuid4().hex}"),
        "account_id": account["id"],
        "type": "metered",
        "product_id": product_id,
        "quantity": quantity,
        "occurred_at": occurred_at,
        **extra,
    }


def amounts(invoice: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal]:
    return Decimal(invoice["amount"]), Decimal(invoice["amount_paid"]), Decimal(invoice["amount_due"])
