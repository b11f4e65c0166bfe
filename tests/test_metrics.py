"""``GET /metrics`` (CONTRACT §4, issue 8): Prometheus text, requests by route template and status, and
the business counters, each asserted to move by exactly what the requests did.

Counters live in the process, so every test scrapes before and after and compares the difference.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import event

from meterbook.accounts import service as accounts
from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.usage import service as usage
from meterbook.usage.schemas import EventIn
from tests.billing import Billing, at, months_ago
from tests.conftest import Tenant

USAGES = "/v1beta1/organizations/billing/usages"


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


class Scrape:
    """Two scrapes around some requests: how much each series moved."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.before = scrape(client)
        self.after: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def again(self) -> Scrape:
        self.after = scrape(self.client)
        return self

    def moved(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return self.after.get(key, 0.0) - self.before.get(key, 0.0)


def frontier_usage(tenant: Tenant, account_id: str, *usages: dict[str, Any]) -> Any:
    body = {"org_id": tenant.id, "billing_id": account_id, "usages": list(usages)}
    return tenant.client.post(USAGES, json=body, headers=tenant.headers)


@pytest.fixture
def funded(tenant: Tenant) -> dict[str, Any]:
    account = tenant.create_account()
    grant = {"id": "welcome", "amount": 1000}
    response = tenant.client.post(f"/v1/accounts/{account['id']}/credits", json=grant, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return account


class TestExposition:
    def test_is_prometheus_text_and_needs_no_key(self, client: TestClient) -> None:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert {"meterbook_http_requests", "meterbook_http_request_duration_seconds"} <= names
        assert {"meterbook_events_accepted", "meterbook_credits_debited", "meterbook_invoices_issued"} <= names

    def test_documented_as_text(self, client: TestClient) -> None:
        operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
        assert "security" not in operation
        content = operation["responses"]["200"]["content"]
        assert content
        assert all(kind.startswith("text/plain") for kind in content), content


TOKEN = "scrape-me-0f9e8d7c6b5a"


class TestToken:
    """``METERBOOK_METRICS_TOKEN`` closes ``/metrics`` to all but ``Authorization: Bearer <token>``."""

    @pytest.fixture
    def closed(self, settings: Settings, database: Database) -> Iterator[TestClient]:
        with TestClient(
            create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}), database)
        ) as client:
            yield client

    @pytest.mark.parametrize(
        ("authorization", "code"),
        [
            (None, "MISSING_API_KEY"),
            ("", "MISSING_API_KEY"),
            (f"Bearer {TOKEN[:-1]}", "INVALID_AUTHORIZATION"),
            (f"Bearer {TOKEN}x", "INVALID_AUTHORIZATION"),
            ("Bearer ", "INVALID_AUTHORIZATION"),
            (f"Basic {TOKEN}", "INVALID_AUTHORIZATION"),
            (TOKEN, "INVALID_AUTHORIZATION"),
        ],
    )
    def test_refused_without_the_token(self, closed: TestClient, authorization: str | None, code: str) -> None:
        headers = {"Authorization": authorization} if authorization is not None else {}
        response = closed.get("/metrics", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        body = response.json()
        assert set(body) == {"error", "id", "note"}
        assert body["error"] == code
        assert "METERBOOK_METRICS_TOKEN" in body["note"]
        assert "meterbook_" not in response.text

    @pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
    def test_served_with_the_token(self, closed: TestClient, scheme: str) -> None:
        response = closed.get("/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200, response.text
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert {"meterbook_http_requests", "meterbook_events_accepted", "meterbook_invoices_issued"} <= names

    def test_closes_only_metrics(self, closed: TestClient, tenant: Tenant) -> None:
        assert closed.get("/healthz").status_code == 200
        assert closed.get("/v1/accounts", headers=tenant.headers).status_code == 200
        # The token is no API key, and an API key is no token.
        assert closed.get("/v1/accounts", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
        assert closed.get("/metrics", headers=tenant.headers).status_code == 401

    def test_open_without_the_setting(self, client: TestClient) -> None:
        assert client.get("/metrics").status_code == 200

    def test_read_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert Settings().metrics_token is None
        monkeypatch.setenv("METERBOOK_METRICS_TOKEN", TOKEN)
        token = Settings().metrics_token
        assert token is not None
        assert token.get_secret_value() == TOKEN
        assert TOKEN not in repr(Settings())  # a secret: not shown where settings are printed
        monkeypatch.setenv("METERBOOK_METRICS_TOKEN", "too-short")
        with pytest.raises(ValueError, match="metrics_token"):
            Settings()

    def test_documented(self, client: TestClient) -> None:
        operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
        assert "METERBOOK_METRICS_TOKEN" in operation["description"]
        assert "401" in operation["responses"]


class TestRequests:
    def test_counted_by_route_template_and_status(self, client: TestClient, tenant: Tenant) -> None:
        account = tenant.create_account()
        unknown = str(uuid.uuid4())
        scrape_ = Scrape(client)
        assert client.get(f"/v1/accounts/{account['id']}", headers=tenant.headers).status_code == 200
        assert client.get(f"/v1/accounts/{unknown}", headers=tenant.headers).status_code == 404
        assert client.get(f"/v1/accounts/{unknown}").status_code == 401
        scrape_.again()
        route = "/v1/accounts/{account_id}"
        assert scrape_.moved("meterbook_http_requests_total", method="GET", route=route, status="200") == 1
        assert scrape_.moved("meterbook_http_requests_total", method="GET", route=route, status="404") == 1
        assert scrape_.moved("meterbook_http_requests_total", method="GET", route=route, status="401") == 1
        latency = "meterbook_http_request_duration_seconds_count"
        assert scrape_.moved(latency, method="GET", route=route, status="404") == 1
        text = client.get("/metrics").text
        assert account["id"] not in text
        assert unknown not in text

    def test_an_unknown_path_is_one_series_whatever_the_path(self, client: TestClient) -> None:
        scrape_ = Scrape(client)
        for path in ("/wp-login.php", "/.env", f"/nothing/{uuid.uuid4()}"):
            assert client.get(path).status_code == 404
        scrape_.again()
        assert scrape_.moved("meterbook_http_requests_total", method="GET", route="unmatched", status="404") == 3
        assert "wp-login" not in client.get("/metrics").text


class TestUsage:
    def test_frontier_usage_counts_events_and_credits(self, client: TestClient, tenant: Tenant, funded: Any) -> None:
        first = {"id": str(uuid.uuid4()), "amount": 30}
        second = {"id": str(uuid.uuid4()), "amount": "12"}
        feature = {"id": str(uuid.uuid4()), "amount": 1, "type": "feature", "source": "seats"}
        put = client.put("/v1/features/seats", json={"default_limit": 5}, headers=tenant.headers)
        assert put.status_code == 201, put.text

        scrape_ = Scrape(client)
        assert frontier_usage(tenant, funded["id"], first, second, feature).status_code == 200
        scrape_.again()
        assert scrape_.moved("meterbook_events_accepted_total") == 3
        assert scrape_.moved("meterbook_events_duplicate_total") == 0
        assert scrape_.moved("meterbook_credits_debited_total") == 42

        retry = Scrape(client)
        assert frontier_usage(tenant, funded["id"], first, second, feature).status_code == 200
        retry.again()
        assert retry.moved("meterbook_events_accepted_total") == 0
        assert retry.moved("meterbook_events_duplicate_total") == 3
        assert retry.moved("meterbook_credits_debited_total") == 0

    def test_a_refused_batch_counts_nothing_but_its_request(
        self, client: TestClient, tenant: Tenant, funded: Any
    ) -> None:
        used = {"id": str(uuid.uuid4()), "amount": 5}
        assert frontier_usage(tenant, funded["id"], used).status_code == 200
        scrape_ = Scrape(client)
        too_much = frontier_usage(tenant, funded["id"], {"id": str(uuid.uuid4()), "amount": 5000})
        assert too_much.status_code == 400
        scrape_.again()
        assert scrape_.moved("meterbook_events_accepted_total") == 0
        assert scrape_.moved("meterbook_credits_debited_total") == 0
        route = "/v1beta1/organizations/billing/usages"
        assert scrape_.moved("meterbook_http_requests_total", method="POST", route=route, status="400") == 1

    def test_a_conflict_is_counted_and_changes_nothing(self, client: TestClient, tenant: Tenant, funded: Any) -> None:
        used = {"id": str(uuid.uuid4()), "amount": 5}
        assert frontier_usage(tenant, funded["id"], used).status_code == 200
        scrape_ = Scrape(client)
        assert frontier_usage(tenant, funded["id"], {**used, "amount": 6}).status_code == 409
        scrape_.again()
        route = "/v1beta1/organizations/billing/usages"
        assert scrape_.moved("meterbook_conflicts_total", route=route) == 1
        assert scrape_.moved("meterbook_events_accepted_total") == 0
        assert scrape_.moved("meterbook_credits_debited_total") == 0

    def test_a_conflicting_credit_grant_is_counted(self, client: TestClient, tenant: Tenant, funded: Any) -> None:
        scrape_ = Scrape(client)
        path = f"/v1/accounts/{funded['id']}/credits"
        assert client.post(path, json={"id": "welcome", "amount": 999}, headers=tenant.headers).status_code == 409
        scrape_.again()
        assert scrape_.moved("meterbook_conflicts_total", route="/v1/accounts/{account_id}/credits") == 1

    def test_native_events_are_counted(self, client: TestClient, tenant: Tenant, funded: Any) -> None:
        events = [
            {"id": "e-1", "account_id": funded["id"], "type": "credit", "quantity": 7},
            {"id": "e-2", "account_id": funded["id"], "type": "credit", "quantity": "3"},
        ]
        scrape_ = Scrape(client)
        assert client.post("/v1/events", json=events, headers=tenant.headers).json() == {"accepted": 2, "duplicates": 0}
        assert client.post("/v1/events", json=events, headers=tenant.headers).json() == {"accepted": 0, "duplicates": 2}
        scrape_.again()
        assert scrape_.moved("meterbook_events_accepted_total") == 2
        assert scrape_.moved("meterbook_events_duplicate_total") == 2
        assert scrape_.moved("meterbook_credits_debited_total") == 10

    def test_a_batch_mixing_stored_and_new_ids_counts_only_the_new_credits(
        self, client: TestClient, tenant: Tenant, funded: Any
    ) -> None:
        stored = {"id": "m-1", "account_id": funded["id"], "type": "credit", "quantity": 4}
        assert client.post("/v1/events", json=[stored], headers=tenant.headers).status_code == 200
        scrape_ = Scrape(client)
        fresh = {"id": "m-2", "account_id": funded["id"], "type": "credit", "quantity": 6}
        answer = client.post("/v1/events", json=[stored, fresh, fresh], headers=tenant.headers)
        assert answer.json() == {"accepted": 1, "duplicates": 2}
        scrape_.again()
        assert scrape_.moved("meterbook_credits_debited_total") == 6
        assert scrape_.moved("meterbook_events_accepted_total") == 1
        assert scrape_.moved("meterbook_events_duplicate_total") == 2


class TestMoney:
    def test_billing_runs_invoices_and_payments(self, client: TestClient, tenant: Tenant) -> None:
        billing = Billing(tenant)
        billing.product("P-1", "2.5")
        month = months_ago(1)
        first, second = billing.account(), billing.account()
        billing.use(first, "P-1", 4, at(month))
        billing.use(second, "P-1", 2, at(month))

        scrape_ = Scrape(client)
        run = billing.billed(month)
        assert run["invoice_count"] == 2
        billing.billed(month, status=200)  # again: nothing new
        payment = billing.paid(first, "10", id="wire-1")
        assert billing.pay(first, "10", id="wire-1").status_code == 200  # the same payment again
        scrape_.again()
        assert scrape_.moved("meterbook_billing_runs_total") == 1
        assert scrape_.moved("meterbook_invoices_issued_total") == 2
        assert scrape_.moved("meterbook_payments_recorded_total") == 1
        assert payment["id"] == "wire-1"


def test_workers_share_one_view(tmp_path: Path) -> None:
    """With ``serve --workers N`` each process writes its values to the shared directory; a scrape adds them up."""
    directory = tmp_path / "metrics"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    prepare = "from pathlib import Path; from meterbook import metrics; metrics.prepare_multiprocess(Path(%r))"
    subprocess.run([sys.executable, "-c", prepare % str(directory)], check=True, env=env)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    bump = (
        "from meterbook import metrics\n"
        "metrics.record_billing_run(True, {n})\n"
        "metrics.observe_request('GET', '/healthz', 200, 0.01)\n"
    )
    for invoices in (3, 4):
        subprocess.run([sys.executable, "-c", bump.format(n=invoices)], check=True, env=env)
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from meterbook import metrics; sys.stdout.write(metrics.render().decode())",
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(shown)
        for sample in family.samples
    }
    assert samples[("meterbook_invoices_issued_total", frozenset())] == 7
    assert samples[("meterbook_billing_runs_total", frozenset())] == 2
    healthz = frozenset({"method": "GET", "route": "/healthz", "status": "200"}.items())
    assert samples[("meterbook_http_requests_total", healthz)] == 2


class TestGroupCommitFallback:
    """A merged group of ingestion requests that falls back to one request at a time is counted and logged
    (issue 22): a merged path that failed every time would otherwise only cost speed, unseen."""

    FALLBACKS = "meterbook_group_commit_fallbacks_total"

    @staticmethod
    def requests(tenant: Tenant, database: Database, product: str, count: int) -> list[Any]:
        account = tenant.create_account()
        with database.read() as conn:
            principal = accounts.authenticate(conn, tenant.key)
        return [
            (
                principal,
                [
                    EventIn.model_validate(
                        {
                            "id": f"g-{n}",
                            "account_id": account["id"],
                            "type": "metered",
                            "product_id": product,
                            "quantity": 1,
                        }
                    )
                ],
            )
            for n in range(count)
        ]

    @staticmethod
    @contextmanager
    def event_inserts(database: Database) -> Iterator[list[str]]:
        statements: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "INSERT INTO usage_events" in statement:
                statements.append(statement)

        event.listen(database.engine, "before_cursor_execute", seen)
        try:
            yield statements
        finally:
            event.remove(database.engine, "before_cursor_execute", seen)

    def test_a_group_of_good_requests_is_applied_merged(
        self, client: TestClient, tenant: Tenant, database: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        tenant.client.put("/v1/products/P", json={"description": "p", "unit_price": 1}, headers=tenant.headers)
        group = self.requests(tenant, database, "P", 3)
        scrape = Scrape(client)
        with self.event_inserts(database) as statements, database.write() as conn:
            outcomes = usage.ingest_group(conn, group)
        assert [outcome.accepted for outcome in outcomes] == [1, 1, 1]  # type: ignore[union-attr]
        # One insert for the three requests: they went in as one batch.
        assert len(statements) == 1
        scrape.again()
        assert scrape.moved(self.FALLBACKS, reason="refused") == 0
        assert scrape.moved(self.FALLBACKS, reason="error") == 0
        assert "one by one" not in caplog.text

    def test_a_refused_request_makes_its_group_go_one_by_one_counted_and_logged(
        self, client: TestClient, tenant: Tenant, database: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        tenant.client.put("/v1/products/P", json={"description": "p", "unit_price": 1}, headers=tenant.headers)
        group = self.requests(tenant, database, "P", 2) + self.requests(tenant, database, "NOPE", 1)
        scrape = Scrape(client)
        with caplog.at_level(logging.INFO, logger="meterbook"), database.write() as conn:
            outcomes = usage.ingest_group(conn, group)
        assert [type(outcome).__name__ for outcome in outcomes] == ["IngestResult", "IngestResult", "ValidationFailed"]
        scrape.again()
        assert scrape.moved(self.FALLBACKS, reason="refused") == 1
        assert scrape.moved(self.FALLBACKS, reason="error") == 0
        assert "a merged group of 3 requests is applied one by one" in caplog.text

    def test_a_merged_attempt_that_fails_otherwise_is_a_warning(
        self,
        client: TestClient,
        tenant: Tenant,
        database: Database,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        tenant.client.put("/v1/products/P", json={"description": "p", "unit_price": 1}, headers=tenant.headers)
        group = self.requests(tenant, database, "P", 2)
        apply_batch = usage._apply_batch

        def failing_when_merged(conn: Any, principal: Any, events: Any) -> Any:
            if len(events) > 1:
                raise RuntimeError("the merged statement failed")
            return apply_batch(conn, principal, events)

        monkeypatch.setattr(usage, "_apply_batch", failing_when_merged)
        scrape = Scrape(client)
        with caplog.at_level(logging.INFO, logger="meterbook"), database.write() as conn:
            outcomes = usage.ingest_group(conn, group)
        assert [outcome.accepted for outcome in outcomes] == [1, 1]  # type: ignore[union-attr]
        scrape.again()
        assert scrape.moved(self.FALLBACKS, reason="error") == 1
        [record] = [r for r in caplog.records if "failed; applying them one by one" in r.getMessage()]
        assert record.levelno == logging.WARNING
        assert "the merged statement failed" in caplog.text
