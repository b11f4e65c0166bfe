"""Issue 7, item 2: schemathesis against ``/openapi.json``, every operation of every dialect, in process.

Each operation is fuzzed with valid keys (an organization key, an account key, a platform key) over a
seeded world, so that paths and bodies name real accounts, invoices, keys and projects as often as random
ones. Every reply must be no 5xx, a documented status, and a body matching the documented schema for that
status (the dialect's error shape included) with the documented content type.

The bounded run (CI) takes ``FUZZ_EXAMPLES`` examples per operation and generation mode; set
``METERBOOK_FUZZ_EXAMPLES`` for a longer one (and ``METERBOOK_FUZZ_SEED`` to vary the examples, which are
otherwise the same on every run). Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from meterbook.db import Database
from tests.conftest import Tenant, bearer
from tests.reliability.world import FEATURE, PRODUCT, Org, build_org

FUZZ_EXAMPLES = int(os.environ.get("METERBOOK_FUZZ_EXAMPLES", "15"))
FUZZ_SEED = os.environ.get("METERBOOK_FUZZ_SEED")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _real_values(org: Org, other: Org) -> dict[str, list[Any]]:
    """For each parameter or body field name, values that exist (and a few that exist elsewhere)."""
    accounts = [*org.account_ids(), other.parent["id"]]
    return {
        "account_id": accounts,
        "billing_id": accounts,
        "billing_account_id": accounts,
        "parent_account_id": accounts,
        "id": accounts,
        "org_id": [org.id, other.id],
        "project_id": [org.project_id],
        "invoice_id": [org.invoice_id, other.invoice_id],
        "key_id": [org.spare_key_id],
        "usage_id": [org.usage_id],
        "product_id": [PRODUCT],
        "feature": [FEATURE],
        "name": [FEATURE],
        "month": [org.month],
        # The same fields in proto JSON, as the Frontier ConnectRPC methods take them.
        "orgId": [org.id, other.id],
        "billingId": accounts,
        "projectId": [org.project_id],
        "usageId": [org.usage_id],
    }


def _mixed(values: dict[str, Any] | None, real: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """Each known field keeps its generated value or takes a real one."""
    if not isinstance(values, dict):
        return st.just(values)
    choices = {
        name: st.sampled_from([value, *real[name]]) if name in real else st.just(value)
        for name, value in values.items()
    }
    return st.fixed_dictionaries(choices)


def _body(body: Any, real: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    if isinstance(body, dict):
        return _mixed(body, real)
    if isinstance(body, list) and body and all(isinstance(item, dict) for item in body):
        return st.tuples(*(_mixed(item, real) for item in body)).map(list)
    return st.just(body)


def _schema(client: TestClient, real: dict[str, list[Any]]) -> Any:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())

    @schema.hook
    def flatmap_path_parameters(_context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return _mixed(path_parameters, real)

    @schema.hook
    def flatmap_query(_context: Any, query: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return _mixed(query, real)

    @schema.hook
    def flatmap_body(_context: Any, body: Any) -> st.SearchStrategy[Any]:
        return _body(body, real)

    return schema


def _run_operation(
    operation: Any,
    mode: GenerationMode,
    send: Callable[[Any, str], Any],
    keys: list[str],
) -> None:
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=FUZZ_SEED is None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), key=st.sampled_from(keys))
    def fuzz(case: Any, key: str) -> None:
        response = send(case, key)
        case.validate_response(response, checks=CHECKS)

    if FUZZ_SEED is not None:
        fuzz = seed(int(FUZZ_SEED))(fuzz)
    fuzz()


def test_every_operation_of_every_dialect_answers_as_documented(
    client: TestClient, database: Database, make_tenant: Any, platform_key: str, backend: str
) -> None:
    org = build_org(client, make_tenant("Acme"))
    other = build_org(client, make_tenant("Other Co"))
    real = _real_values(org, other)
    schema = _schema(client, real)
    # Mostly the organization key, which reaches everything; a platform key may only create organizations.
    keys = [org.key, org.key, org.parent_key, platform_key]
    statuses: Counter[int] = Counter()
    cases = 0

    def send(case: Any, key: str) -> Any:
        nonlocal cases
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        headers = {**kwargs.pop("headers", {}), **bearer(key)}
        method, url = kwargs.pop("method"), kwargs.pop("url")
        kwargs.pop("cookies", None)
        if isinstance(kwargs.get("data"), str | bytes):
            kwargs["content"] = kwargs.pop("data")  # raw bodies of negative cases: httpx's spelling
        response = client.request(method, url, headers=headers, **kwargs)
        cases += 1
        statuses[response.status_code] += 1
        return response

    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run_operation(operation, mode, send, keys)
            except Unsatisfiable:
                # Nothing to make invalid: the operation takes no parameters and no body.
                assert mode == GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as error:  # every operation runs; each failure is reported below
                failures.append(f"{operation.label} ({mode.value}): {error}")
    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    print(
        f"\nfuzz [{backend}]: {len(operations)} operations, {cases} cases, {server_errors} 5xx, "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert len(operations) >= 38
    assert not failures, "\n\n".join(failures)


def test_a_year_before_1000_is_written_with_four_digits(client: TestClient, tenant: Tenant) -> None:
    """Found by the fuzzer: ``strftime`` wrote the year 584 as ``584-11-12T21:51:08Z``, which is not RFC 3339."""
    created = client.post(
        "/v1/accounts", json={"name": "Old", "contract_started_at": "0584-11-12T21:51:08Z"}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["contract_started_at"] == "0584-11-12T21:51:08Z"
    read = client.get(f"/v1/accounts/{created.json()['id']}", headers=tenant.headers)
    assert read.json()["contract_started_at"] == "0584-11-12T21:51:08Z"
