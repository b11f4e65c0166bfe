"""Every SQL statement of the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from meterbook.catalog.models import Price, Product
from meterbook.db.tables import product_prices, products
from meterbook.db.upsert import insert_for

__all__ = ["insert_product", "list_products", "put_price", "update_product"]


_PRODUCTS = select(products).where(products.c.organization_id == bindparam("organization_id"))
_PRICES = select(product_prices).where(product_prices.c.organization_id == bindparam("organization_id"))
# The ingestion path asks for a few products by id on every request: statements built once.
_PRODUCTS_BY_ID = _PRODUCTS.where(products.c.product_id.in_(bindparam("ids", expanding=True))).order_by(
    products.c.product_id
)
_PRICES_BY_ID = _PRICES.where(product_prices.c.product_id.in_(bindparam("ids", expanding=True))).order_by(
    product_prices.c.product_id, product_prices.c.effective_from
)
_ALL_PRODUCTS = _PRODUCTS.order_by(products.c.product_id)
_ALL_PRICES = _PRICES.order_by(product_prices.c.product_id, product_prices.c.effective_from)


def list_products(conn: Connection, organization_id: uuid.UUID, ids: Iterable[str] | None = None) -> list[Product]:
    parameters: dict[str, Any] = {"organization_id": organization_id}
    if ids is None:
        statement, price_statement = _ALL_PRODUCTS, _ALL_PRICES
    else:
        statement, price_statement = _PRODUCTS_BY_ID, _PRICES_BY_ID
        parameters["ids"] = list(ids)
    rows = conn.execute(statement, parameters).all()
    price_rows = conn.execute(price_statement, parameters).all()
    prices = {
        product_id: tuple(Price(row.effective_from, row.unit_price) for row in group)
        for product_id, group in groupby(price_rows, key=lambda row: row.product_id)
    }
    return [
        Product(
            **{k: v for k, v in row._mapping.items() if k != "organization_id"}, prices=prices.get(row.product_id, ())
        )
        for row in rows
    ]


def insert_product(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(products).values(**values))


def update_product(conn: Connection, organization_id: uuid.UUID, product_id: str, values: Mapping[str, Any]) -> None:
    conn.execute(
        update(products)
        .where(products.c.organization_id == organization_id, products.c.product_id == product_id)
        .values(**values)
    )


def put_price(conn: Connection, organization_id: uuid.UUID, product_id: str, price: Price) -> None:
    statement = insert_for(conn, product_prices).values(
        organization_id=organization_id,
        product_id=product_id,
        effective_from=price.effective_from,
        unit_price=price.unit_price,
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["organization_id", "product_id", "effective_from"],
            set_={"unit_price": statement.excluded.unit_price},
        )
    )
