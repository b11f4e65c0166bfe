"""The Faraday accounts dialect under ``/v1/accounts`` (CONTRACT §3.1, seed ``faraday-get-account.txt``).

Everything is asserted as a client sees it: the status, the body, and the stored state re-read
through the API. Every test runs on SQLite and on PostgreSQL (through the ``client`` fixture).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime

import pytest
from sqlalchemy import select

from meterbook.db.tables import accounts as accounts_table
from meterbook.db.tables import api_keys as api_keys_table
from tests.conftest import bearer

# The fields of the seed's example response, all of which an account must show.
SEED_FIELDS = {
    "api_key",
    "archived_at",
    "branding",
    "commitment",
    "created_at",
    "id",
    "last_read_input_at",
    "last_updated_config_at",
    "last_updated_output_at",
    "name",
    "parent_account_id",
    "resource_type",
    "status",
    "status_changed_at",
    "status_error",
    "stripe_customer_id",
    "updated_at",
}
TIMESTAMP_FIELDS = [
    "archived_at",
    "created_at",
    "last_read_input_at",
    "last_updated_config_at",
    "last_updated_output_at",
    "status_changed_at",
    "updated_at",
    "contract_started_at",
]
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
WHOLE_KEY = re.compile(r"^mbk_[0-9a-f]{32}_[0-9a-f]{48}$")
# RFC 7396's type, plain JSON, and what the published @fdy/faraday-js sends (its AccountsApi.updateAccount).
MERGE_PATCH_TYPES = ["application/merge-patch+json", "application/json", "application/json+merge-patch"]
MAX_BODY_BYTES = 64 * 1024  # the test settings' limit (tests/conftest.py)


# --- helpers ---------------------------------------------------------------------------------------


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def random_id():
    return str(uuid.uuid4())


def post_raw(client, key, text, content_type="application/json"):
    return client.post("/v1/accounts", content=text, headers={**bearer(key), "content-type": content_type})


def get_account(client, key, account_id):
    response = client.get(f"/v1/accounts/{account_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def list_accounts(client, key, **params):
    response = client.get("/v1/accounts", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def ids_of(accounts):
    return [account["id"] for account in accounts]


def without_key(account):
    return {name: value for name, value in account.items() if name != "api_key"}


def assert_error(response, status, code):
    """The Faraday error shape, exactly: error, id (uuid), note, and validationErrors only on VALIDATION_FAILED."""
    assert response.status_code == status, response.text
    body = response.json()
    expected = {"error", "id", "note"} | ({"validationErrors"} if code == "VALIDATION_FAILED" else set())
    assert set(body) == expected, body
    assert body["error"] == code
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert isinstance(body["note"], str)
    assert body["note"].strip()
    if code == "VALIDATION_FAILED":
        assert body["validationErrors"], body
        for item in body["validationErrors"]:
            assert set(item) == {"context", "message", "path", "suggestion"}, item
            assert set(item["context"]) == {"errorType"}, item
            for text in (item["context"]["errorType"], item["message"], item["path"], item["suggestion"]):
                assert isinstance(text, str)
                assert text.strip()
    return body


def assert_invalid(response, path):
    """400 VALIDATION_FAILED naming ``path``, in a validation error and in the note."""
    body = assert_error(response, 400, "VALIDATION_FAILED")
    assert path in [item["path"] for item in body["validationErrors"]], body
    assert path in body["note"]
    return body


@pytest.fixture(params=MERGE_PATCH_TYPES)
def send_patch(client, request):
    """PATCH a merge patch as each of :data:`MERGE_PATCH_TYPES`."""

    def send(key, account_id, body):
        headers = {**bearer(key), "content-type": request.param}
        return client.patch(f"/v1/accounts/{account_id}", content=json.dumps(body), headers=headers)

    return send


@pytest.fixture
def family(tenant):
    """A parent P (made by the org key) with subaccounts A and B (made by P's key) and A1 under A (made by A's key)."""
    parent = tenant.create_account(name="Parent")
    a = tenant.create_account(key=parent["api_key"], name="Child A")
    b = tenant.create_account(key=parent["api_key"], name="Child B")
    a1 = tenant.create_account(key=a["api_key"], name="Grandchild A1")
    return {"P": parent, "A": a, "B": b, "A1": a1}


# --- GET /v1/accounts/{id} -------------------------------------------------------------------------


class TestRetrieve:
    def test_every_seed_field_is_present(self, client, tenant):
        created = tenant.create_account(name="Acme Wind Turbines")
        account = get_account(client, tenant.key, created["id"])
        assert set(account) >= SEED_FIELDS
        assert set(account["branding"]) == {"suppress_from_reports"}
        assert set(account["commitment"]) == {"monthly_cost", "renewal_date"}
        assert account["id"] == created["id"]
        assert account["name"] == "Acme Wind Turbines"
        assert account["resource_type"] == "accounts"
        assert account["status"] == "ready"

    def test_a_fresh_account_has_nulls_where_nothing_happened(self, client, tenant):
        account = get_account(client, tenant.key, tenant.create_account()["id"])
        for field in (
            "archived_at",
            "last_read_input_at",
            "last_updated_output_at",
            "parent_account_id",
            "status_error",
            "stripe_customer_id",
        ):
            assert account[field] is None, field
        assert account["commitment"] == {"monthly_cost": 0, "renewal_date": None}
        assert account["branding"] == {"suppress_from_reports": False}

    def test_timestamps_are_rfc3339_utc_with_z(self, client, tenant):
        created = tenant.create_account(commitment={"renewal_date": "2025-03-01T12:00:00+02:00"})
        response = client.delete(f"/v1/accounts/{created['id']}", headers=tenant.headers)
        assert response.status_code == 202, response.text
        for account in (created, get_account(client, tenant.key, created["id"])):
            stamps = [account[field] for field in TIMESTAMP_FIELDS] + [account["commitment"]["renewal_date"]]
            for value in stamps:
                if value is not None:
                    assert RFC3339_Z.match(value), value
        account = get_account(client, tenant.key, created["id"])
        assert account["commitment"]["renewal_date"] == "2025-03-01T10:00:00Z"
        assert account["archived_at"] is not None

    def test_get_shows_what_post_returned(self, client, tenant):
        created = tenant.create_account(name="Same")
        assert without_key(get_account(client, tenant.key, created["id"])) == without_key(created)

    def test_an_account_key_reads_its_own_account(self, client, tenant):
        created = tenant.create_account()
        assert get_account(client, created["api_key"], created["id"])["id"] == created["id"]

    def test_unknown_account_is_not_found(self, client, tenant):
        tenant.create_account()
        unknown = random_id()
        body = assert_error(client.get(f"/v1/accounts/{unknown}", headers=tenant.headers), 404, "NOT_FOUND")
        assert unknown in body["note"]


class TestApiKey:
    def test_whole_key_only_in_the_create_reply(self, client, tenant):
        created = tenant.create_account()
        token = created["api_key"]
        assert WHOLE_KEY.match(token), token
        secret = token.rsplit("_", 1)[1]
        replies = [
            client.get(f"/v1/accounts/{created['id']}", headers=tenant.headers),
            client.get(f"/v1/accounts/{created['id']}", headers=bearer(token)),
            client.get("/v1/accounts", headers=tenant.headers),
            client.get("/v1/accounts/current", headers=bearer(token)),
            client.patch(f"/v1/accounts/{created['id']}", json={"name": "Renamed"}, headers=tenant.headers),
            client.delete(f"/v1/accounts/{created['id']}", headers=tenant.headers),
        ]
        for reply in replies:
            assert reply.status_code in (200, 202), reply.text
            assert token not in reply.text
            assert secret not in reply.text
            body = reply.json()
            shown = [item["api_key"] for item in body] if isinstance(body, list) else [body["api_key"]]
            for masked in shown:
                assert masked.startswith(token[:12])
                assert masked.endswith(token[-4:])
                assert masked != token
                assert not WHOLE_KEY.match(masked)
                # No more of the secret than its last four characters.
                assert secret[:-4] not in masked

    def test_the_created_key_works_and_acts_for_the_account(self, client, tenant):
        created = tenant.create_account()
        response = client.get("/v1/accounts/current", headers=bearer(created["api_key"]))
        assert response.status_code == 200, response.text
        assert response.json()["id"] == created["id"]

    def test_each_account_gets_its_own_key(self, tenant):
        first, second = tenant.create_account(), tenant.create_account()
        assert first["api_key"] != second["api_key"]

    def test_the_secret_is_stored_only_as_a_hash(self, client, tenant, database):
        token = tenant.create_account()["api_key"]
        secret = token.rsplit("_", 1)[1]
        with database.read() as conn:
            rows = [*conn.execute(select(api_keys_table)), *conn.execute(select(accounts_table))]
        stored = " ".join(str(value) for row in rows for value in row)
        assert secret not in stored
        assert token not in stored


class TestMoney:
    @pytest.mark.parametrize(
        ("body_text", "shown"),
        [
            ('{"name": "s", "commitment": {"monthly_cost": "0.3"}}', "0.3"),
            ('{"name": "n", "commitment": {"monthly_cost": 0.1}}', "0.1"),
            ('{"name": "n", "commitment": {"monthly_cost": 0.3}}', "0.3"),
            ('{"name": "i", "commitment": {"monthly_cost": 1250}}', "1250"),
            ('{"name": "p", "commitment": {"monthly_cost": "0.000000001"}}', "0.000000001"),
        ],
    )
    def test_monthly_cost_is_exact_in_the_json_text(self, client, tenant, body_text, shown):
        created = post_raw(client, tenant.key, body_text)
        assert created.status_code == 201, created.text
        exact = re.compile(r'"monthly_cost":' + re.escape(shown) + r"[,}]")
        account_id = created.json()["id"]
        fetched = client.get(f"/v1/accounts/{account_id}", headers=tenant.headers)
        listed = client.get("/v1/accounts", params={"ids": account_id}, headers=tenant.headers)
        for reply in (created, fetched, listed):
            assert exact.search(reply.text), reply.text

    @pytest.mark.parametrize(
        ("body_text", "shown"),
        [
            ('{"name": "z", "commitment": {"monthly_cost": "0.30"}}', "0.3"),
            ('{"name": "z", "commitment": {"monthly_cost": 0.30}}', "0.3"),
            ('{"name": "e", "commitment": {"monthly_cost": "1e1"}}', "10"),
        ],
    )
    def test_the_create_reply_shows_money_as_it_is_stored(self, client, tenant, body_text, shown):
        created = post_raw(client, tenant.key, body_text)
        assert created.status_code == 201, created.text
        fetched = client.get(f"/v1/accounts/{created.json()['id']}", headers=tenant.headers)
        exact = re.compile(r'"monthly_cost":' + re.escape(shown) + r"[,}]")
        assert exact.search(fetched.text), fetched.text
        assert exact.search(created.text), created.text

    def test_the_patch_reply_shows_money_as_it_is_stored(self, client, tenant):
        account = tenant.create_account()
        patched = client.patch(
            f"/v1/accounts/{account['id']}",
            content='{"commitment": {"monthly_cost": 2.50}}',
            headers={**tenant.headers, "content-type": "application/merge-patch+json"},
        )
        assert patched.status_code == 200, patched.text
        fetched = client.get(f"/v1/accounts/{account['id']}", headers=tenant.headers)
        assert '"monthly_cost":2.5,' in fetched.text
        assert '"monthly_cost":2.5,' in patched.text


# --- POST /v1/accounts -----------------------------------------------------------------------------


class TestCreate:
    def test_created_with_defaults(self, client, tenant):
        response = client.post("/v1/accounts", json={"name": "Acme Wind Turbines"}, headers=tenant.headers)
        assert response.status_code == 201, response.text
        created = response.json()
        for account in (created, get_account(client, tenant.key, created["id"])):
            assert account["name"] == "Acme Wind Turbines"
            assert account["currency"] == "USD"
            assert account["status"] == "ready"
            assert account["net_terms_days"] == 30
            assert account["credit_min"] == 0
            assert account["email"] is None
            assert account["contract_started_at"] == account["created_at"]
            assert account["status_changed_at"] == account["created_at"]
            assert account["updated_at"] == account["created_at"]
            assert account["last_updated_config_at"] == account["created_at"]
            assert account["branding"] == {"suppress_from_reports": False}
            assert account["commitment"] == {"monthly_cost": 0, "renewal_date": None}
            assert account["parent_account_id"] is None
            assert account["archived_at"] is None
        assert str(uuid.UUID(created["id"])) == created["id"]

    def test_every_setting_is_accepted_and_stored(self, client, tenant):
        parent = tenant.create_account(name="Parent")
        body = {
            "name": "Full",
            "email": "billing@full.example",
            "currency": "EUR",
            "commitment": {"monthly_cost": "1250.5", "renewal_date": "2025-02-01T00:00:00Z"},
            "branding": {"suppress_from_reports": True},
            "contract_started_at": "2024-01-15T09:30:00Z",
            "net_terms_days": 45,
            "credit_min": -500,
            "status": "running",
            "stripe_customer_id": "cus_Q1w2E3r4",
            "parent_account_id": parent["id"],
        }
        response = client.post("/v1/accounts", json=body, headers=tenant.headers)
        assert response.status_code == 201, response.text
        created = response.json()
        fetched_response = client.get(f"/v1/accounts/{created['id']}", headers=tenant.headers)
        assert '"monthly_cost":1250.5,' in fetched_response.text
        for account in (created, fetched_response.json()):
            assert account["email"] == "billing@full.example"
            assert account["currency"] == "EUR"
            assert account["commitment"]["renewal_date"] == "2025-02-01T00:00:00Z"
            assert account["branding"] == {"suppress_from_reports": True}
            assert account["contract_started_at"] == "2024-01-15T09:30:00Z"
            assert account["net_terms_days"] == 45
            assert account["credit_min"] == -500
            assert account["status"] == "running"
            assert account["stripe_customer_id"] == "cus_Q1w2E3r4"
            assert account["parent_account_id"] == parent["id"]

    def test_times_with_an_offset_are_stored_in_utc(self, client, tenant):
        created = tenant.create_account(contract_started_at="2024-01-01T12:00:00+02:00")
        assert created["contract_started_at"] == "2024-01-01T10:00:00Z"
        assert get_account(client, tenant.key, created["id"])["contract_started_at"] == "2024-01-01T10:00:00Z"

    def test_the_name_is_trimmed(self, client, tenant):
        created = tenant.create_account(name="  Padded  ")
        assert get_account(client, tenant.key, created["id"])["name"] == "Padded"

    def test_an_account_key_creates_a_subaccount_of_its_own_account(self, client, tenant):
        parent = tenant.create_account(name="Parent")
        response = client.post("/v1/accounts", json={"name": "Child"}, headers=bearer(parent["api_key"]))
        assert response.status_code == 201, response.text
        child = response.json()
        assert child["parent_account_id"] == parent["id"]
        assert get_account(client, tenant.key, child["id"])["parent_account_id"] == parent["id"]
        assert get_account(client, parent["api_key"], child["id"])["id"] == child["id"]

    def test_an_account_key_may_name_one_of_its_subaccounts_as_parent(self, client, tenant):
        parent = tenant.create_account(name="Parent")
        child = tenant.create_account(key=parent["api_key"], name="Child")
        grandchild = tenant.create_account(key=parent["api_key"], name="Grandchild", parent_account_id=child["id"])
        assert grandchild["parent_account_id"] == child["id"]
        assert get_account(client, child["api_key"], grandchild["id"])["parent_account_id"] == child["id"]

    def test_unknown_and_read_only_fields_are_ignored(self, client, tenant):
        chosen_id = random_id()
        body = {
            "name": "Ignores",
            "favourite_colour": "green",
            "id": chosen_id,
            "resource_type": "widgets",
            "created_at": "2000-01-01T00:00:00Z",
            "archived_at": "2000-01-01T00:00:00Z",
            "api_key": "mbk_" + "0" * 32 + "_" + "0" * 48,
        }
        response = client.post("/v1/accounts", json=body, headers=tenant.headers)
        assert response.status_code == 201, response.text
        account = get_account(client, tenant.key, response.json()["id"])
        assert account["id"] != chosen_id
        assert account["resource_type"] == "accounts"
        assert account["archived_at"] is None
        assert ts(account["created_at"]).year > 2000
        assert "favourite_colour" not in account
        assert account["api_key"] != body["api_key"]

    def test_a_status_error_is_kept_only_with_status_error(self, client, tenant):
        failing = tenant.create_account(status="error", status_error="the build broke")
        healthy = tenant.create_account(status="ready", status_error="ignored")
        assert get_account(client, tenant.key, failing["id"])["status_error"] == "the build broke"
        assert get_account(client, tenant.key, healthy["id"])["status_error"] is None

    def test_the_new_account_is_listed(self, client, tenant):
        before = list_accounts(client, tenant.key)
        created = tenant.create_account()
        after = list_accounts(client, tenant.key)
        assert ids_of(after) == [*ids_of(before), created["id"]]


class TestCreateValidation:
    @pytest.mark.parametrize(
        ("body", "path"),
        [
            pytest.param({"name": "   "}, "body.name", id="blank-name"),
            pytest.param({}, "body.name", id="missing-name"),
            pytest.param({"name": "x" * 201}, "body.name", id="long-name"),
            pytest.param({"name": 12}, "body.name", id="number-name"),
            pytest.param({"name": "n", "currency": "XYZ"}, "body.currency", id="unknown-currency"),
            pytest.param({"name": "n", "currency": "usd"}, "body.currency", id="lower-case-currency"),
            pytest.param(
                {"name": "n", "contract_started_at": "2024-01-01T12:00:00"},
                "body.contract_started_at",
                id="naive-contract-start",
            ),
            pytest.param(
                {"name": "n", "commitment": {"renewal_date": "2024-01-01T12:00:00"}},
                "body.commitment.renewal_date",
                id="naive-renewal-date",
            ),
            pytest.param(
                {"name": "n", "commitment": {"monthly_cost": "-1"}}, "body.commitment.monthly_cost", id="negative-cost"
            ),
            pytest.param(
                {"name": "n", "commitment": {"monthly_cost": "0.0000000001"}},
                "body.commitment.monthly_cost",
                id="ten-decimals",
            ),
            pytest.param(
                {"name": "n", "commitment": {"monthly_cost": "NaN"}}, "body.commitment.monthly_cost", id="nan-cost"
            ),
            pytest.param(
                {"name": "n", "commitment": {"monthly_cost": "1e30"}}, "body.commitment.monthly_cost", id="huge-cost"
            ),
            pytest.param({"name": "n", "net_terms_days": -1}, "body.net_terms_days", id="negative-net-terms"),
            pytest.param({"name": "n", "credit_min": 2**63}, "body.credit_min", id="credit-min-overflow"),
            pytest.param({"name": "n", "credit_min": "lots"}, "body.credit_min", id="credit-min-text"),
            pytest.param({"name": "n", "email": "not-an-address"}, "body.email", id="bad-email"),
            pytest.param({"name": "n", "status": "pending"}, "body.status", id="unknown-status"),
            pytest.param({"name": "n", "branding": "yes please"}, "body.branding", id="branding-not-object"),
            pytest.param({"name": "n", "parent_account_id": "parent"}, "body.parent_account_id", id="parent-not-uuid"),
        ],
    )
    def test_invalid_settings_are_refused_and_nothing_is_created(self, client, tenant, body, path):
        tenant.create_account(name="Existing")
        before = list_accounts(client, tenant.key)
        assert_invalid(client.post("/v1/accounts", json=body, headers=tenant.headers), path)
        assert list_accounts(client, tenant.key) == before

    def test_a_money_number_too_large_for_storage_is_refused(self, client, tenant):
        before = list_accounts(client, tenant.key)
        response = post_raw(client, tenant.key, '{"name": "n", "commitment": {"monthly_cost": 1e400}}')
        assert_invalid(response, "body.commitment.monthly_cost")
        assert list_accounts(client, tenant.key) == before

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            pytest.param(
                {"name": "n", "contract_started_at": "9999-12-31T23:00:00-05:00"},
                "body.contract_started_at",
                id="contract-start-after-year-9999",
            ),
            pytest.param(
                {"name": "n", "commitment": {"renewal_date": "9999-12-31T23:00:00-05:00"}},
                "body.commitment.renewal_date",
                id="renewal-after-year-9999",
            ),
            pytest.param(
                {"name": "n", "commitment": {"renewal_date": "0001-01-01T00:00:00+01:00"}},
                "body.commitment.renewal_date",
                id="renewal-before-year-1",
            ),
        ],
    )
    def test_a_time_that_is_out_of_range_in_utc_is_refused(self, client, tenant, body, path):
        # The instant has no RFC 3339 UTC form (its year is 10000 or 0): bad input, so a 4xx, never a 500.
        before = list_accounts(client, tenant.key)
        assert_invalid(client.post("/v1/accounts", json=body, headers=tenant.headers), path)
        assert list_accounts(client, tenant.key) == before

    @pytest.mark.parametrize("field", ["name", "stripe_customer_id"])
    def test_a_nul_character_is_refused(self, client, tenant, field):
        # PostgreSQL cannot store NUL in text, so both databases refuse it when the body is read.
        before = list_accounts(client, tenant.key)
        body = {"name": "n", field: "before\u0000after"}
        response = client.post("/v1/accounts", json=body, headers=tenant.headers)
        assert "NUL" in assert_error(response, 400, "BAD_REQUEST")["note"]
        assert list_accounts(client, tenant.key) == before


class TestParent:
    def test_a_parent_in_another_organization_is_refused(self, client, tenant, other_tenant):
        foreign = other_tenant.create_account(name="Foreign Parent")
        mine_before = list_accounts(client, tenant.key)
        theirs_before = list_accounts(client, other_tenant.key)
        response = client.post(
            "/v1/accounts", json={"name": "Child", "parent_account_id": foreign["id"]}, headers=tenant.headers
        )
        body = assert_invalid(response, "body.parent_account_id")
        assert "Foreign Parent" not in response.text
        assert len(body["validationErrors"]) == 1
        assert list_accounts(client, tenant.key) == mine_before
        assert list_accounts(client, other_tenant.key) == theirs_before

    def test_an_unknown_parent_is_refused_with_the_same_words_as_a_foreign_one(self, client, tenant, other_tenant):
        foreign_id = other_tenant.create_account()["id"]
        unknown_id = random_id()
        before = list_accounts(client, tenant.key)

        def refusal(parent_id):
            response = client.post(
                "/v1/accounts", json={"name": "Child", "parent_account_id": parent_id}, headers=tenant.headers
            )
            body = assert_invalid(response, "body.parent_account_id")
            item = body["validationErrors"][0]
            return (
                body["error"],
                body["note"].replace(parent_id, "<id>"),
                item["message"].replace(parent_id, "<id>"),
                item["context"]["errorType"],
            )

        assert refusal(foreign_id) == refusal(unknown_id)
        assert list_accounts(client, tenant.key) == before

    def test_an_account_key_cannot_name_a_sibling_as_parent(self, client, tenant, family):
        a_key, b_id = family["A"]["api_key"], family["B"]["id"]
        before = list_accounts(client, tenant.key)
        response = client.post("/v1/accounts", json={"name": "Child", "parent_account_id": b_id}, headers=bearer(a_key))
        refused = assert_invalid(response, "body.parent_account_id")
        unknown_id = random_id()
        response = client.post(
            "/v1/accounts", json={"name": "Child", "parent_account_id": unknown_id}, headers=bearer(a_key)
        )
        unknown = assert_invalid(response, "body.parent_account_id")
        assert refused["note"].replace(b_id, "<id>") == unknown["note"].replace(unknown_id, "<id>")
        assert list_accounts(client, tenant.key) == before

    def test_an_account_key_cannot_name_its_own_parent_as_parent(self, client, tenant, family):
        before = list_accounts(client, tenant.key)
        response = client.post(
            "/v1/accounts",
            json={"name": "Child", "parent_account_id": family["P"]["id"]},
            headers=bearer(family["A"]["api_key"]),
        )
        assert_invalid(response, "body.parent_account_id")
        assert list_accounts(client, tenant.key) == before

    def test_a_subaccount_cannot_be_created_under_an_archived_parent(self, client, tenant):
        parent = tenant.create_account(name="Parent")
        assert client.delete(f"/v1/accounts/{parent['id']}", headers=tenant.headers).status_code == 202
        before = list_accounts(client, tenant.key)
        response = client.post(
            "/v1/accounts", json={"name": "Child", "parent_account_id": parent["id"]}, headers=tenant.headers
        )
        assert_invalid(response, "body.parent_account_id")
        # Nor through the archived account's own key, which may read and never write.
        response = client.post("/v1/accounts", json={"name": "Child"}, headers=bearer(parent["api_key"]))
        assert "archived" in assert_error(response, 403, "FORBIDDEN")["note"]
        assert list_accounts(client, tenant.key) == before


# --- GET /v1/accounts ------------------------------------------------------------------------------


class TestList:
    def test_an_organization_key_lists_all_of_its_accounts_and_no_others(self, client, tenant, other_tenant, family):
        other_tenant.create_account(name="Elsewhere")
        top = tenant.create_account(name="Top")
        mine = ids_of(list_accounts(client, tenant.key))
        # Oldest first.
        assert mine == [family["P"]["id"], family["A"]["id"], family["B"]["id"], family["A1"]["id"], top["id"]]
        theirs = ids_of(list_accounts(client, other_tenant.key))
        assert len(theirs) == 1
        assert not set(theirs) & set(mine)

    def test_an_account_key_lists_itself_and_its_subaccounts_at_any_depth(self, client, family):
        assert ids_of(list_accounts(client, family["P"]["api_key"])) == [
            family["P"]["id"],
            family["A"]["id"],
            family["B"]["id"],
            family["A1"]["id"],
        ]
        assert ids_of(list_accounts(client, family["A"]["api_key"])) == [family["A"]["id"], family["A1"]["id"]]
        assert ids_of(list_accounts(client, family["B"]["api_key"])) == [family["B"]["id"]]
        assert ids_of(list_accounts(client, family["A1"]["api_key"])) == [family["A1"]["id"]]

    def test_the_list_shows_the_same_accounts_as_get(self, client, tenant, family):
        for account in list_accounts(client, tenant.key):
            assert account == get_account(client, tenant.key, account["id"])

    def test_ids_narrows_the_list(self, client, tenant, family):
        wanted = [family["B"]["id"], family["P"]["id"]]
        assert ids_of(list_accounts(client, tenant.key, ids=wanted)) == [family["P"]["id"], family["B"]["id"]]
        assert ids_of(list_accounts(client, tenant.key, ids=[family["A1"]["id"]])) == [family["A1"]["id"]]

    def test_ids_out_of_reach_are_silently_left_out(self, client, tenant, other_tenant, family):
        foreign = other_tenant.create_account()
        asked = [foreign["id"], random_id(), family["A"]["id"]]
        assert ids_of(list_accounts(client, tenant.key, ids=asked)) == [family["A"]["id"]]
        # For an account key, its parent and siblings are out of reach too.
        asked = [family["P"]["id"], family["B"]["id"], family["A1"]["id"], foreign["id"]]
        assert ids_of(list_accounts(client, family["A"]["api_key"], ids=asked)) == [family["A1"]["id"]]
        assert list_accounts(client, family["B"]["api_key"], ids=[family["A"]["id"]]) == []

    def test_a_bad_uuid_in_ids_is_a_validation_failure(self, client, tenant):
        tenant.create_account()
        response = client.get("/v1/accounts", params={"ids": [random_id(), "not-a-uuid"]}, headers=tenant.headers)
        body = assert_error(response, 400, "VALIDATION_FAILED")
        assert all(item["path"].startswith("query.ids") for item in body["validationErrors"]), body

    def test_a_new_organization_lists_nothing(self, client, tenant, other_tenant):
        other_tenant.create_account()
        assert list_accounts(client, tenant.key) == []


# --- GET /v1/accounts/current ----------------------------------------------------------------------


class TestCurrent:
    def test_an_account_key_gets_its_own_account(self, client, tenant, family):
        for name in ("P", "A1"):
            account = family[name]
            response = client.get("/v1/accounts/current", headers=bearer(account["api_key"]))
            assert response.status_code == 200, response.text
            assert without_key(response.json()) == without_key(get_account(client, tenant.key, account["id"]))

    def test_an_organization_key_has_no_current_account(self, client, tenant):
        tenant.create_account()
        assert_error(client.get("/v1/accounts/current", headers=tenant.headers), 404, "NOT_FOUND")


# --- PATCH /v1/accounts/{id} -----------------------------------------------------------------------


class TestPatch:
    def test_changes_the_name(self, client, tenant, send_patch):
        account = tenant.create_account(name="Before")
        response = send_patch(tenant.key, account["id"], {"name": "After"})
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "After"
        stored = get_account(client, tenant.key, account["id"])
        assert stored["name"] == "After"
        assert without_key(stored) == without_key(response.json())

    def test_merges_nested_branding(self, client, tenant, send_patch):
        account = tenant.create_account()
        response = send_patch(tenant.key, account["id"], {"branding": {"suppress_from_reports": True}})
        assert response.status_code == 200, response.text
        assert get_account(client, tenant.key, account["id"])["branding"] == {"suppress_from_reports": True}

    def test_a_commitment_member_is_merged_not_replaced(self, client, tenant, send_patch):
        account = tenant.create_account(commitment={"monthly_cost": "100", "renewal_date": "2025-01-01T00:00:00Z"})
        response = send_patch(tenant.key, account["id"], {"commitment": {"monthly_cost": "250.75"}})
        assert response.status_code == 200, response.text
        fetched = client.get(f"/v1/accounts/{account['id']}", headers=tenant.headers)
        assert fetched.json()["commitment"]["renewal_date"] == "2025-01-01T00:00:00Z"
        assert '"monthly_cost":250.75,' in fetched.text

    def test_null_renewal_date_keeps_the_monthly_cost(self, client, tenant, send_patch):
        account = tenant.create_account(commitment={"monthly_cost": "100", "renewal_date": "2025-01-01T00:00:00Z"})
        response = send_patch(tenant.key, account["id"], {"commitment": {"renewal_date": None}})
        assert response.status_code == 200, response.text
        assert get_account(client, tenant.key, account["id"])["commitment"] == {
            "monthly_cost": 100,
            "renewal_date": None,
        }

    def test_null_resets_optional_settings(self, client, tenant, send_patch):
        account = tenant.create_account(
            email="pay@acme.example",
            stripe_customer_id="cus_1",
            commitment={"monthly_cost": "99.5", "renewal_date": "2025-01-01T00:00:00Z"},
            contract_started_at="2020-01-01T00:00:00Z",
        )
        patch = {"email": None, "stripe_customer_id": None, "commitment": None, "contract_started_at": None}
        response = send_patch(tenant.key, account["id"], patch)
        assert response.status_code == 200, response.text
        stored = get_account(client, tenant.key, account["id"])
        assert stored["email"] is None
        assert stored["stripe_customer_id"] is None
        assert stored["commitment"] == {"monthly_cost": 0, "renewal_date": None}
        assert stored["contract_started_at"] == stored["created_at"]

    def test_every_setting_can_be_changed(self, client, tenant, send_patch):
        account = tenant.create_account()
        patch = {
            "email": "new@acme.example",
            "currency": "JPY",
            "contract_started_at": "2023-06-01T00:00:00Z",
            "net_terms_days": 0,
            "credit_min": -1000,
            "stripe_customer_id": "cus_new",
            "status": "starting",
        }
        response = send_patch(tenant.key, account["id"], patch)
        assert response.status_code == 200, response.text
        stored = get_account(client, tenant.key, account["id"])
        for field, value in patch.items():
            assert stored[field] == value, field

    def test_null_name_is_refused(self, client, tenant, send_patch):
        account = tenant.create_account(name="Keep")
        before = list_accounts(client, tenant.key)
        assert_invalid(send_patch(tenant.key, account["id"], {"name": None}), "body.name")
        assert list_accounts(client, tenant.key) == before

    def test_a_status_change_moves_status_changed_at_other_changes_do_not(self, client, tenant, send_patch):
        account = tenant.create_account()
        renamed = send_patch(tenant.key, account["id"], {"name": "Renamed", "status": "ready"}).json()
        assert renamed["status_changed_at"] == account["status_changed_at"]
        response = send_patch(tenant.key, account["id"], {"status": "running"})
        assert response.status_code == 200, response.text
        stored = get_account(client, tenant.key, account["id"])
        assert stored["status"] == "running"
        assert ts(stored["status_changed_at"]) > ts(account["status_changed_at"])
        assert stored["status_changed_at"] == stored["updated_at"]

    def test_updated_at_and_last_updated_config_at_move_forward(self, client, tenant, send_patch):
        account = tenant.create_account()
        first = send_patch(tenant.key, account["id"], {"net_terms_days": 14}).json()
        second = send_patch(tenant.key, account["id"], {"net_terms_days": 15}).json()
        stored = get_account(client, tenant.key, account["id"])
        assert ts(account["updated_at"]) < ts(first["updated_at"]) < ts(stored["updated_at"])
        assert ts(account["last_updated_config_at"]) < ts(first["last_updated_config_at"])
        assert stored["updated_at"] == second["updated_at"] == stored["last_updated_config_at"]
        assert stored["created_at"] == account["created_at"]

    def test_status_error_is_kept_only_while_the_status_is_error(self, client, tenant, send_patch):
        account = tenant.create_account()
        response = send_patch(tenant.key, account["id"], {"status": "error", "status_error": "quota exhausted"})
        assert response.status_code == 200, response.text
        assert get_account(client, tenant.key, account["id"])["status_error"] == "quota exhausted"
        # Another change keeps the message.
        send_patch(tenant.key, account["id"], {"name": "Still failing"})
        assert get_account(client, tenant.key, account["id"])["status_error"] == "quota exhausted"
        # Leaving the error status clears it.
        send_patch(tenant.key, account["id"], {"status": "ready"})
        assert get_account(client, tenant.key, account["id"])["status_error"] is None
        # A message without the error status is not kept.
        send_patch(tenant.key, account["id"], {"status_error": "stray"})
        stored = get_account(client, tenant.key, account["id"])
        assert stored["status"] == "ready"
        assert stored["status_error"] is None

    def test_parent_cannot_change(self, client, tenant, family, send_patch):
        before = list_accounts(client, tenant.key)
        child = family["A"]
        response = send_patch(tenant.key, child["id"], {"parent_account_id": family["B"]["id"], "name": "Moved"})
        assert_invalid(response, "body.parent_account_id")
        response = send_patch(tenant.key, child["id"], {"parent_account_id": None})
        assert_invalid(response, "body.parent_account_id")
        top = family["P"]
        response = send_patch(tenant.key, top["id"], {"parent_account_id": family["B"]["id"]})
        assert_invalid(response, "body.parent_account_id")
        assert list_accounts(client, tenant.key) == before

    def test_sending_back_the_account_as_it_was_read_changes_no_setting(self, client, tenant, family, send_patch):
        account = get_account(client, tenant.key, family["A"]["id"])
        response = send_patch(tenant.key, account["id"], account)
        assert response.status_code == 200, response.text
        stored = get_account(client, tenant.key, account["id"])
        moved = {"updated_at", "last_updated_config_at"}
        assert {k: v for k, v in stored.items() if k not in moved} == {
            k: v for k, v in account.items() if k not in moved
        }

    @pytest.mark.parametrize(
        ("patch", "path"),
        [
            pytest.param({"name": "  "}, "body.name", id="blank-name"),
            pytest.param({"currency": "usd"}, "body.currency", id="lower-case-currency"),
            pytest.param({"currency": "XYZ"}, "body.currency", id="unknown-currency"),
            pytest.param({"contract_started_at": "2024-01-01T00:00:00"}, "body.contract_started_at", id="naive"),
            pytest.param({"net_terms_days": -1}, "body.net_terms_days", id="negative-net-terms"),
            pytest.param({"commitment": {"monthly_cost": "-0.01"}}, "body.commitment.monthly_cost", id="negative"),
            pytest.param(
                {"commitment": {"monthly_cost": "1.0000000001"}}, "body.commitment.monthly_cost", id="ten-decimals"
            ),
            pytest.param({"status": "pending"}, "body.status", id="unknown-status"),
            pytest.param({"email": "nobody"}, "body.email", id="bad-email"),
            pytest.param({"branding": {"suppress_from_reports": "maybe"}}, "body.branding.suppress_from_reports"),
            pytest.param(
                {"commitment": {"renewal_date": "9999-12-31T23:00:00-05:00"}},
                "body.commitment.renewal_date",
                id="renewal-after-year-9999",
            ),
        ],
    )
    def test_invalid_settings_are_refused_and_nothing_changes(self, client, tenant, send_patch, patch, path):
        account = tenant.create_account(name="Stable", commitment={"monthly_cost": "10"})
        before = list_accounts(client, tenant.key)
        # A valid change alongside the invalid one must not be applied either.
        assert_invalid(send_patch(tenant.key, account["id"], {**patch, "stripe_customer_id": "cus_x"}), path)
        assert list_accounts(client, tenant.key) == before

    @pytest.mark.parametrize("body", [[{"name": "x"}], "name", 3, None])
    def test_a_body_that_is_not_an_object_is_refused(self, client, tenant, send_patch, body):
        account = tenant.create_account()
        before = list_accounts(client, tenant.key)
        response = send_patch(tenant.key, account["id"], body)
        assert_error(response, 400, "VALIDATION_FAILED")
        assert list_accounts(client, tenant.key) == before

    def test_malformed_json_is_a_bad_request(self, client, tenant):
        account = tenant.create_account()
        before = list_accounts(client, tenant.key)
        for content_type in MERGE_PATCH_TYPES:
            response = client.patch(
                f"/v1/accounts/{account['id']}",
                content='{"name": "half',
                headers={**tenant.headers, "content-type": content_type},
            )
            assert_error(response, 400, "BAD_REQUEST")
        assert list_accounts(client, tenant.key) == before

    @pytest.mark.parametrize("content_type", ["text/plain", "application/merge-patch", "application/json+patch"])
    def test_a_body_of_another_type_is_a_bad_request(self, client, tenant, content_type):
        account = tenant.create_account(name="Globex")
        response = client.patch(
            f"/v1/accounts/{account['id']}",
            content='{"name": "Renamed"}',
            headers={**tenant.headers, "content-type": content_type},
        )
        assert content_type in assert_error(response, 400, "BAD_REQUEST")["note"]
        assert get_account(client, tenant.key, account["id"])["name"] == "Globex"

    def test_the_faraday_clients_type_is_a_merge_patch_only_on_patch(self, client, tenant):
        # A create is not a merge patch: its type stays refused there, and nothing is created.
        before = list_accounts(client, tenant.key)
        response = post_raw(client, tenant.key, '{"name": "Hooli"}', "application/json+merge-patch")
        assert_error(response, 400, "BAD_REQUEST")
        assert list_accounts(client, tenant.key) == before

    def test_another_organizations_key_gets_not_found_with_the_faraday_clients_type(self, client, tenant, other_tenant):
        account = tenant.create_account(name="Globex")
        response = client.patch(
            f"/v1/accounts/{account['id']}",
            content='{"name": "Taken"}',
            headers={**bearer(other_tenant.key), "content-type": "application/json+merge-patch"},
        )
        assert_error(response, 404, "NOT_FOUND")
        assert get_account(client, tenant.key, account["id"])["name"] == "Globex"

    def test_an_archived_account_is_a_conflict(self, client, tenant, send_patch):
        account = tenant.create_account(name="Old")
        assert client.delete(f"/v1/accounts/{account['id']}", headers=tenant.headers).status_code == 202
        before = list_accounts(client, tenant.key)
        assert_error(send_patch(tenant.key, account["id"], {"name": "New"}), 409, "CONFLICT")
        assert list_accounts(client, tenant.key) == before


# --- DELETE /v1/accounts/{id} ----------------------------------------------------------------------


class TestArchive:
    def test_archiving_answers_202_with_archived_at(self, client, tenant):
        account = tenant.create_account(name="Going")
        response = client.delete(f"/v1/accounts/{account['id']}", headers=tenant.headers)
        assert response.status_code == 202, response.text
        archived = response.json()
        assert archived["id"] == account["id"]
        assert RFC3339_Z.match(archived["archived_at"])
        assert ts(archived["archived_at"]) >= ts(account["created_at"])

    def test_an_archived_account_stays_readable(self, client, tenant):
        account = tenant.create_account(name="Going", email="a@b.example")
        archived = client.delete(f"/v1/accounts/{account['id']}", headers=tenant.headers).json()
        stored = get_account(client, tenant.key, account["id"])
        assert stored["archived_at"] == archived["archived_at"]
        assert stored["name"] == "Going"
        assert stored["email"] == "a@b.example"
        assert without_key(stored) == without_key(archived)
        assert account["id"] in ids_of(list_accounts(client, tenant.key))

    def test_archiving_again_changes_nothing(self, client, tenant):
        account = tenant.create_account()
        first = client.delete(f"/v1/accounts/{account['id']}", headers=tenant.headers).json()
        again = client.delete(f"/v1/accounts/{account['id']}", headers=tenant.headers)
        assert again.status_code == 202, again.text
        assert again.json()["archived_at"] == first["archived_at"]
        stored = get_account(client, tenant.key, account["id"])
        assert stored["archived_at"] == first["archived_at"]
        assert stored["updated_at"] == first["updated_at"]

    def test_archiving_leaves_other_accounts_alone(self, client, tenant, family):
        before = {account["id"]: account for account in list_accounts(client, tenant.key)}
        assert client.delete(f"/v1/accounts/{family['A']['id']}", headers=tenant.headers).status_code == 202
        after = {account["id"]: account for account in list_accounts(client, tenant.key)}
        assert after.keys() == before.keys()
        for account_id in (family["P"]["id"], family["B"]["id"], family["A1"]["id"]):
            assert after[account_id] == before[account_id]

    def test_an_unknown_account_is_not_found(self, client, tenant):
        assert_error(client.delete(f"/v1/accounts/{random_id()}", headers=tenant.headers), 404, "NOT_FOUND")


# --- reach (invariant 8) ---------------------------------------------------------------------------


def call(client, method, key, account_id):
    url = f"/v1/accounts/{account_id}"
    if method == "PATCH":
        return client.patch(url, json={"name": "Hijacked", "email": "thief@evil.example"}, headers=bearer(key))
    return client.request(method, url, headers=bearer(key))


def assert_untouched(client, tenant, account):
    stored = get_account(client, tenant.key, account["id"])
    assert stored["name"] == account["name"]
    assert stored["email"] == account["email"]
    assert stored["archived_at"] is None
    assert stored["updated_at"] == account["updated_at"]


def outside_reach(method):
    """An account key outside its reach: not found; archiving is refused to every account key before any lookup."""
    return (403, "FORBIDDEN") if method == "DELETE" else (404, "NOT_FOUND")


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
class TestReach:
    def test_another_organizations_key_gets_not_found(self, client, tenant, other_tenant, method):
        secret = tenant.create_account(
            name="Secret Turbines", email="cfo@secret.example", stripe_customer_id="cus_SECRET42"
        )
        response = call(client, method, other_tenant.key, secret["id"])
        assert_error(response, 404, "NOT_FOUND")
        for leak in ("Secret Turbines", "cfo@secret.example", "cus_SECRET42", tenant.id, secret["api_key"][:12]):
            assert leak not in response.text
        assert_untouched(client, tenant, secret)

    def test_a_foreign_account_looks_exactly_like_a_missing_one(self, client, tenant, other_tenant, method):
        foreign_id = tenant.create_account(name="Exists")["id"]
        missing_id = random_id()
        foreign = assert_error(call(client, method, other_tenant.key, foreign_id), 404, "NOT_FOUND")
        missing = assert_error(call(client, method, other_tenant.key, missing_id), 404, "NOT_FOUND")
        assert foreign["error"] == missing["error"]
        assert foreign["note"].replace(foreign_id, "<id>") == missing["note"].replace(missing_id, "<id>")
        assert foreign.keys() == missing.keys()

    def test_a_siblings_key_gets_not_found(self, client, tenant, family, method):
        b = get_account(client, tenant.key, family["B"]["id"])
        assert_error(call(client, method, family["A"]["api_key"], b["id"]), *outside_reach(method))
        assert_untouched(client, tenant, b)

    def test_a_subaccounts_key_does_not_reach_its_parent(self, client, tenant, family, method):
        for child, parent in (("A", "P"), ("A1", "A"), ("A1", "P")):
            target = get_account(client, tenant.key, family[parent]["id"])
            assert_error(call(client, method, family[child]["api_key"], target["id"]), *outside_reach(method))
            assert_untouched(client, tenant, target)

    def test_a_parents_key_reaches_its_subaccounts_at_any_depth(self, client, tenant, family, method):
        response = call(client, method, family["P"]["api_key"], family["A1"]["id"])
        if method == "DELETE":
            # Archiving ends an account's commitment: the operator's, whatever account it is.
            assert_error(response, 403, "FORBIDDEN")
            return
        assert response.status_code == 200, response.text
        assert response.json()["id"] == family["A1"]["id"]


# --- scopes ----------------------------------------------------------------------------------------


class TestScopes:
    def test_a_read_only_key_reads(self, client, tenant):
        account = tenant.create_account()
        reader = tenant.create_key(scopes=["accounts:read"])["key"]
        assert get_account(client, reader, account["id"])["id"] == account["id"]
        assert ids_of(list_accounts(client, reader)) == [account["id"]]

    def test_a_read_only_key_cannot_write(self, client, tenant):
        account = tenant.create_account(name="Unchanged")
        reader = tenant.create_key(scopes=["accounts:read"])["key"]
        before = list_accounts(client, tenant.key)
        url = f"/v1/accounts/{account['id']}"
        refused = [
            client.post("/v1/accounts", json={"name": "New"}, headers=bearer(reader)),
            client.patch(url, json={"name": "Changed"}, headers=bearer(reader)),
            client.delete(url, headers=bearer(reader)),
        ]
        for response in refused:
            assert_error(response, 403, "FORBIDDEN")
        assert list_accounts(client, tenant.key) == before

    def test_a_key_without_accounts_read_cannot_read(self, client, tenant):
        account = tenant.create_account(name="Hidden Name")
        billing = tenant.create_key(scopes=["billing:read"])["key"]
        for url in (f"/v1/accounts/{account['id']}", "/v1/accounts", "/v1/accounts/current"):
            response = client.get(url, headers=bearer(billing))
            assert_error(response, 403, "FORBIDDEN")
            assert "Hidden Name" not in response.text

    def test_a_platform_key_reaches_no_account(self, client, tenant, platform_key):
        account = tenant.create_account(name="Hidden Name")
        before = list_accounts(client, tenant.key)
        for response in (
            client.get(f"/v1/accounts/{account['id']}", headers=bearer(platform_key)),
            client.get("/v1/accounts", headers=bearer(platform_key)),
            client.post("/v1/accounts", json={"name": "New"}, headers=bearer(platform_key)),
        ):
            assert_error(response, 403, "FORBIDDEN")
            assert "Hidden Name" not in response.text
        assert list_accounts(client, tenant.key) == before


# --- authentication --------------------------------------------------------------------------------


class TestAuthentication:
    def test_no_key(self, client, tenant):
        account = tenant.create_account()
        assert_error(client.get(f"/v1/accounts/{account['id']}"), 401, "MISSING_API_KEY")
        assert_error(client.get("/v1/accounts"), 401, "MISSING_API_KEY")

    @pytest.mark.parametrize(
        ("header", "code"),
        [
            ("Token abc", "INVALID_AUTHORIZATION"),
            ("Bearer", "INVALID_AUTHORIZATION"),
            ("Bearer prod_fdysec_abcd", "MALFORMED_API_KEY"),
            ("Bearer mbk_" + "0" * 32 + "_" + "0" * 48, "INVALID_AUTHORIZATION"),
        ],
    )
    def test_unusable_credentials(self, client, tenant, header, code):
        tenant.create_account()
        before = list_accounts(client, tenant.key)
        assert_error(client.get("/v1/accounts", headers={"Authorization": header}), 401, code)
        response = client.post("/v1/accounts", json={"name": "n"}, headers={"Authorization": header})
        assert_error(response, 401, code)
        assert list_accounts(client, tenant.key) == before

    def test_a_wrong_secret_for_a_real_key_id(self, client, tenant):
        token = tenant.create_account()["api_key"]
        forged = token[:-48] + ("0" * 48 if token[-48:] != "0" * 48 else "1" * 48)
        assert_error(client.get("/v1/accounts", headers=bearer(forged)), 401, "INVALID_AUTHORIZATION")

    def test_a_revoked_key_is_refused(self, client, tenant):
        created = tenant.create_key(scopes=["accounts:read"])
        assert client.get("/v1/accounts", headers=bearer(created["key"])).status_code == 200
        assert client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers).status_code == 200
        assert_error(client.get("/v1/accounts", headers=bearer(created["key"])), 401, "INVALID_AUTHORIZATION")


# --- errors and bodies -----------------------------------------------------------------------------


class TestErrors:
    @pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
    def test_a_non_uuid_account_id_is_a_validation_failure_not_404(self, client, tenant, method):
        tenant.create_account()
        before = list_accounts(client, tenant.key)
        response = client.request(method, "/v1/accounts/acme-wind", json={"name": "x"}, headers=tenant.headers)
        assert_invalid(response, "path.account_id")
        assert list_accounts(client, tenant.key) == before

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param('{"name": "half', id="truncated"),
            pytest.param("name=x", id="not-json"),
            pytest.param('{"name": "a", "name": "b"}', id="duplicate-key"),
            pytest.param('{"name": "n", "credit_min": NaN}', id="nan"),
        ],
    )
    def test_malformed_json_is_a_bad_request_and_creates_nothing(self, client, tenant, text):
        before = list_accounts(client, tenant.key)
        assert_error(post_raw(client, tenant.key, text), 400, "BAD_REQUEST")
        assert list_accounts(client, tenant.key) == before

    def test_a_body_over_the_limit_is_413_and_creates_nothing(self, client, tenant):
        before = list_accounts(client, tenant.key)
        # A valid account, padded with an unknown field: without the limit it would be created.
        text = json.dumps({"name": "Large", "padding": "x" * MAX_BODY_BYTES})
        response = post_raw(client, tenant.key, text)
        assert_error(response, 413, "BAD_REQUEST")
        assert list_accounts(client, tenant.key) == before

    def test_a_streamed_body_over_the_limit_is_413_and_creates_nothing(self, client, tenant):
        before = list_accounts(client, tenant.key)
        text = json.dumps({"name": "Large", "padding": "x" * MAX_BODY_BYTES}).encode()

        def chunks():  # no Content-Length: the limit must be enforced as the body streams in
            for start in range(0, len(text), 8192):
                yield text[start : start + 8192]

        response = client.post(
            "/v1/accounts", content=chunks(), headers={**tenant.headers, "content-type": "application/json"}
        )
        assert_error(response, 413, "BAD_REQUEST")
        assert list_accounts(client, tenant.key) == before

    def test_a_body_just_under_the_limit_is_accepted(self, client, tenant):
        text = json.dumps({"name": "Large", "padding": "x" * (MAX_BODY_BYTES - 100)})
        assert len(text) <= MAX_BODY_BYTES
        response = post_raw(client, tenant.key, text)
        assert response.status_code == 201, response.text

    def test_a_missing_body_is_a_validation_failure(self, client, tenant):
        before = list_accounts(client, tenant.key)
        response = client.post("/v1/accounts", headers=tenant.headers)
        assert_invalid(response, "body")
        assert list_accounts(client, tenant.key) == before

    def test_an_error_id_is_fresh_each_time(self, client, tenant):
        first = assert_error(client.get(f"/v1/accounts/{random_id()}", headers=tenant.headers), 404, "NOT_FOUND")
        second = assert_error(client.get(f"/v1/accounts/{random_id()}", headers=tenant.headers), 404, "NOT_FOUND")
        assert first["id"] != second["id"]
