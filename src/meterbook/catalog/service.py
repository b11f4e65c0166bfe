"""The rules of the catalog: a product is created or changed whole, and a price change is dated."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection

from meterbook.accounts.models import Principal
from meterbook.accounts.reach import require_organization
from meterbook.catalog import repository
from meterbook.catalog.models import Price, Product
from meterbook.catalog.schemas import ProductPut
from meterbook.kit.time import utcnow

#: Where a new product's first price starts when no date is given.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["list_products", "products_by_id", "put_product"]


def put_product(conn: Connection, principal: Principal, product_id: str, data: ProductPut) -> tuple[Product, bool]:
    """Create the product, or change it; a new price holds from ``price_effective_from`` on. True when created."""
    organization_id = require_organization(principal)
    now = utcnow()
    existing = repository.list_products(conn, organization_id, [product_id])
    values = {
        "aggr_product_id": data.aggr_product_id,
        "description": data.description,
        "type": data.type,
        "unit": data.unit,
        "wallet_name": data.wallet_name,
        "currency": data.currency,
        "updated_at": now,
    }
    # A new product's first price holds for all earlier usage too (imported history is priced);
    # a later change, by default, from now on.
    effective_from = data.price_effective_from or (now if existing else BEGINNING)
    if existing:
        repository.update_product(conn, organization_id, product_id, values)
        # A dated price is always recorded (a later change may be dated before it); an undated PUT that
        # repeats the price in force adds nothing.
        if data.price_effective_from is not None or existing[0].price_at(effective_from) != data.unit_price:
            repository.put_price(conn, organization_id, product_id, Price(effective_from, data.unit_price))
    else:
        repository.insert_product(
            conn, {"organization_id": organization_id, "product_id": product_id, "created_at": now, **values}
        )
        repository.put_price(conn, organization_id, product_id, Price(effective_from, data.unit_price))
    return repository.list_products(conn, organization_id, [product_id])[0], not existing


def list_products(conn: Connection, principal: Principal) -> list[Product]:
    return repository.list_products(conn, require_organization(principal))


def products_by_id(conn: Connection, organization_id: uuid.UUID, ids: Iterable[str]) -> dict[str, Product]:
    found = repository.list_products(conn, organization_id, ids)
    return {product.product_id: product for product in found}
