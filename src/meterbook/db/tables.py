"""Every table, as SQLAlchemy Core metadata. Migrations create them; a test checks the two agree.

Conventions: UUID primary keys; timestamps are :class:`UtcDateTime`; money is :class:`FixedDecimal`
(integers of 10**-9, or of 10**-4 for amounts already rounded to a currency's minor unit, which is
never finer than four digits); integer credits are ``BigInteger``. Only repositories import this module.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

from meterbook.db.types import FixedDecimal, UtcDateTime

__all__ = [
    "account_prices",
    "accounts",
    "alert_triggers",
    "alerts",
    "api_keys",
    "billing_history",
    "billing_history_days",
    "billing_history_slices",
    "billing_runs",
    "console_sessions",
    "credit_balances",
    "credit_transactions",
    "feature_limits",
    "feature_usage",
    "features",
    "invoice_lines",
    "invoices",
    "jobs",
    "ledger_entries",
    "metadata",
    "monthly_aggregates",
    "organizations",
    "payment_allocations",
    "payments",
    "plan_versions",
    "plans",
    "product_prices",
    "products",
    "projects",
    "subscriptions",
    "usage_events",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_events",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    # The Frontier dialect bills an organization's usage to this account when no billing id is given.
    Column("default_billing_account_id", Uuid, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("parent_account_id", Uuid, ForeignKey("accounts.id"), nullable=True),
    # Materialized path "<root hex>/<child hex>/…/<own hex>/": the reach of an account key is one prefix test.
    Column("path", String(1000), nullable=False),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_changed_at", UtcDateTime, nullable=False),
    Column("status_error", String(1000), nullable=True),
    Column("suppress_from_reports", Boolean, nullable=False),
    Column("monthly_cost", FixedDecimal(), nullable=False),
    Column("renewal_date", UtcDateTime, nullable=True),
    Column("contract_started_at", UtcDateTime, nullable=False),
    Column("net_terms_days", Integer, nullable=False),
    Column("credit_min", BigInteger, nullable=False),
    Column("stripe_customer_id", String(255), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("archived_at", UtcDateTime, nullable=True),
    Column("last_read_input_at", UtcDateTime, nullable=True),
    Column("last_updated_config_at", UtcDateTime, nullable=False),
    Column("last_updated_output_at", UtcDateTime, nullable=True),
    Index(None, "organization_id", "path"),
    Index(None, "organization_id", "created_at"),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("billing_account_id", Uuid, ForeignKey("accounts.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "organization_id", "created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    # Both null: a platform key, which may only create organizations.
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=True),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=True),
    Column("name", String(200), nullable=True),
    # SHA-256 of the secret, hex. The secret itself is never stored.
    Column("secret_hash", String(64), nullable=False),
    Column("masked", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    # The key that made this one (null: made by the CLI, or an organization's first key). Revoking a key
    # revokes every key below it (contract §4, "Who may do what").
    Column("created_by_key_id", Uuid, ForeignKey("api_keys.id"), nullable=True),
    Index(None, "organization_id", "created_at"),
    Index(None, "account_id"),
    Index(None, "created_by_key_id"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    # The id the console's signed cookie carries: a session exists only while its row says so, so that
    # signing out ends it on the server and not only in the browser.
    Column("id", Uuid, primary_key=True),
    Column("key_id", Uuid, ForeignKey("api_keys.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Index(None, "key_id"),
)

# --- catalog ---------------------------------------------------------------------------------------

products = Table(
    "products",
    metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("product_id", String(100), primary_key=True),
    Column("aggr_product_id", String(100), nullable=True),
    Column("description", String(255), nullable=False),
    Column("type", String(32), nullable=False),
    Column("unit", String(50), nullable=False),
    Column("wallet_name", String(100), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

product_prices = Table(
    "product_prices",
    metadata,
    Column("organization_id", Uuid, primary_key=True),
    Column("product_id", String(100), primary_key=True),
    # The price holds from this instant until the next row's.
    Column("effective_from", UtcDateTime, primary_key=True),
    Column("unit_price", FixedDecimal(), nullable=False),
)

# --- plans, subscriptions and negotiated prices (CONTRACT §6) ---------------------------------------
# Prices are stored as the JSON of their price model (``pricing.Price``), numbers written as their exact
# decimal text by ``kit.jsontext``: never a float, never Numeric.

plans = Table(
    "plans",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("code", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "organization_id", "code", unique=True),
)

plan_versions = Table(
    "plan_versions",
    metadata,
    Column("plan_id", Uuid, ForeignKey("plans.id"), primary_key=True),
    # The first instant of a UTC month: the version holds from then until the next version's.
    Column("effective_from", UtcDateTime, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    # The fixed fee of a month on the plan.
    Column("fee", FixedDecimal(), nullable=False),
    # JSON: {product_id: price model}.
    Column("prices", Text, nullable=False),
    # JSON: {feature: limit, null for unlimited}.
    Column("limits", Text, nullable=False),
    # Whole credits granted each month; null: none. Rollover "none", "all" or "cap" (up to credits_rollover_cap).
    Column("included_credits", BigInteger, nullable=True),
    Column("credits_rollover", String(4), nullable=True),
    Column("credits_rollover_cap", BigInteger, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    Column("plan_id", Uuid, ForeignKey("plans.id"), nullable=False),
    # In force from starts_at (inclusive) to ends_at (exclusive; null: until changed). An account's never overlap.
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "account_id", "starts_at", unique=True),
    Index(None, "plan_id"),
    # A billing run reads the organization's subscriptions of its month (fees), not every organization's.
    Index(None, "organization_id", "starts_at"),
)

account_prices = Table(
    "account_prices",
    metadata,
    Column("account_id", Uuid, ForeignKey("accounts.id"), primary_key=True),
    Column("product_id", String(100), primary_key=True),
    # The first instant of a UTC month: the negotiated price holds from then until the next one's.
    Column("effective_from", UtcDateTime, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    # JSON: the price model.
    Column("price", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # A billing run reads the organization's negotiated prices.
    Index(None, "organization_id"),
)

# --- features --------------------------------------------------------------------------------------

features = Table(
    "features",
    metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("description", String(1000), nullable=False),
    # Null: unlimited.
    Column("default_limit", BigInteger, nullable=True),
    Column("reset", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

feature_limits = Table(
    "feature_limits",
    metadata,
    Column("account_id", Uuid, ForeignKey("accounts.id"), primary_key=True),
    Column("feature", String(200), primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    # Null: unlimited for this account, whatever the default.
    Column("limit", BigInteger, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

feature_usage = Table(
    "feature_usage",
    metadata,
    Column("account_id", Uuid, ForeignKey("accounts.id"), primary_key=True),
    Column("feature", String(200), primary_key=True),
    # "" for a feature that never resets, "YYYY-MM" (UTC) for one that resets monthly.
    Column("period", String(7), primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("used", BigInteger, nullable=False),
)

# --- usage -----------------------------------------------------------------------------------------

usage_events = Table(
    "usage_events",
    metadata,
    Column("organization_id", Uuid, nullable=False),
    # The client's id: the idempotency key, unique per account for ever (contract invariant 1: ids are
    # per account, so that no key learns of, or blocks, another account's ids; migration 0007).
    Column("id", String(255), nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("product_id", String(100), nullable=True),
    Column("feature", String(200), nullable=True),
    # Exact decimal text: metered quantities carry up to 9 decimals, credits and counts are integers.
    Column("quantity", String(40), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("direction", String(16), nullable=True),
    Column("resolution", String(100), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("source", String(100), nullable=True),
    Column("description", String(1000), nullable=True),
    Column("metadata", Text, nullable=True),
    # A digest of what the client sent: a retry with the same id is a duplicate only if this matches.
    Column("fingerprint", String(32), nullable=False),
    # How the event was rated when it arrived (events that name a product): what `verify` recomputes from.
    Column("aggregate_id", String(32), nullable=True),
    Column("unit_price", FixedDecimal(), nullable=True),
    # No other index: nothing reads events but by (account, id) and `verify`'s full scan, and each index
    # costs a random B-tree insertion per event (see migration 0004).
    PrimaryKeyConstraint("account_id", "id"),
)

# --- aggregates ------------------------------------------------------------------------------------

monthly_aggregates = Table(
    "monthly_aggregates",
    metadata,
    # 32 hex digits derived from the key below: stable for ever, the Talkdesk dialect's usage id.
    Column("id", String(32), primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    Column("product_id", String(100), nullable=False),
    Column("month", String(7), nullable=False),
    Column("type", String(32), nullable=False),
    # "" stands for none in the key columns, so that the key is unique on both databases.
    Column("direction", String(16), nullable=False),
    Column("resolution", String(100), nullable=False),
    Column("unit", String(50), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("wallet_name", String(100), nullable=False),
    Column("price", FixedDecimal(), nullable=False),
    # The plan the account was on when the usage occurred (its id), "" for none: tiers count a month's units per
    # plan. Which price applies is decided when read (docs/pricing.md): a negotiated price or the plan version of
    # the month, else the catalog's `price` above.
    Column("plan_id", String(36), nullable=False),
    # number_of_units = units_whole + units_nanos / 10**9, exact; at the catalog's price, total = units * price.
    Column("units_whole", BigInteger, nullable=False),
    Column("units_nanos", BigInteger, nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Index(None, "organization_id", "month", "account_id"),
    # Read paths (docs/decisions.md, "Read paths at scale"): the aggregates of a month in id order (the
    # Talkdesk default order), and an account's aggregates by month; both hold every column a search's
    # filter, count and order need, so that only the rows of the page are read from the table. The
    # narrowest, (organization, month), is what counting a month's aggregates reads: half the pages.
    Index(None, "organization_id", "month", "id", "account_id"),
    Index(None, "account_id", "month", "id", "organization_id"),
    Index(None, "organization_id", "month"),
)

# --- ledger ----------------------------------------------------------------------------------------

credit_transactions = Table(
    "credit_transactions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    # grant | purchase | usage | revert
    Column("kind", String(8), nullable=False),
    # Always positive; the kind says which way it moves.
    Column("amount", BigInteger, nullable=False),
    # The transaction's id as clients know it (CONTRACT §3.4): a usage debit's is the usage's id, a grant's the
    # grant's, a revert's Frontier's derived id. Unique per account (contract invariant 1), it is also what makes
    # a retried grant land on the same transaction. (Until migration 0008: "grant:<id>" and "usage:<id>".)
    Column("idempotency_key", String(300), nullable=True),
    Column("reverts_id", Uuid, ForeignKey("credit_transactions.id"), nullable=True),
    Column("source", String(100), nullable=False),
    Column("description", String(1000), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("metadata", Text, nullable=True),
    Column("fingerprint", String(32), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # Key first: a revert finds a usage by its id alone among the accounts a key reaches (one index
    # search, not one per account); the pair is what is unique.
    Index(None, "idempotency_key", "account_id", unique=True),
    Index(None, "account_id", "created_at"),
    Index(None, "reverts_id"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("transaction_id", Uuid, ForeignKey("credit_transactions.id"), primary_key=True),
    Column("line", Integer, primary_key=True),
    # Exactly one of the two is set: the customer's account, or a system account such as "system:usage".
    Column("account_id", Uuid, nullable=True),
    Column("system_account", String(32), nullable=True),
    # Signed: the entries of one transaction sum to zero.
    Column("amount", BigInteger, nullable=False),
)

credit_balances = Table(
    "credit_balances",
    metadata,
    Column("account_id", Uuid, ForeignKey("accounts.id"), primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# --- invoicing and payments ------------------------------------------------------------------------

#: Amounts rounded to a currency's minor unit (at most four digits): ten thousand times more headroom than 10**-9.
BILLED = 4

billing_runs = Table(
    "billing_runs",
    metadata,
    # One row per invoiced month: its presence is what refuses usage dated in that month.
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("invoice_count", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    # Sequential per organization, from 1, in the order invoices were issued.
    Column("number", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("month", String(7), nullable=False),
    # open | paid | void
    Column("status", String(8), nullable=False),
    Column("amount", FixedDecimal(BILLED), nullable=False),
    # What payments cover now; a void gives it back to the payments it came from.
    Column("amount_paid", FixedDecimal(BILLED), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("effective_date", UtcDateTime, nullable=False),
    Column("due_date", UtcDateTime, nullable=False),
    Column("paid_at", UtcDateTime, nullable=True),
    Column("voided_at", UtcDateTime, nullable=True),
    Index(None, "organization_id", "number", unique=True),
    Index(None, "account_id", "month", "currency", unique=True),
    Index(None, "organization_id", "month"),
    # One account's invoices in number order (the Faraday billing view), without reading the organization's.
    Index(None, "organization_id", "account_id", "number"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", Uuid, ForeignKey("invoices.id"), primary_key=True),
    Column("line", Integer, primary_key=True),
    # subscription (the commitment) | fee (a plan's fixed fee) | usage (one product under one price)
    Column("kind", String(16), nullable=False),
    Column("product_id", String(100), nullable=True),
    Column("description", String(255), nullable=False),
    Column("quantity", FixedDecimal(), nullable=False),
    # Null when the month's usage of the product was rated at more than one price.
    Column("unit_price", FixedDecimal(), nullable=True),
    # The exact sum before rounding, kept so that the rounding can be checked.
    Column("unrounded_amount", Text, nullable=False),
    Column("amount", FixedDecimal(BILLED), nullable=False),
    # A tiered usage line's breakdown: JSON text, numbers as exact decimal text; null for other lines.
    Column("tiers", Text, nullable=True),
)

payments = Table(
    "payments",
    metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    # The client's id (idempotency key, unique per account), or a generated UUID.
    Column("id", String(255), nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    Column("amount", FixedDecimal(BILLED), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("date", UtcDateTime, nullable=False),
    Column("invoice_id", Uuid, ForeignKey("invoices.id"), nullable=True),
    Column("reference", String(255), nullable=True),
    # What is not (or no longer) applied to any invoice; the next invoice in this currency takes it first.
    Column("unapplied", FixedDecimal(BILLED), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "id"),
    Index(None, "account_id", "currency", "date"),
    # An organization's payments, and those that still hold money (what each billing run looks for),
    # without reading other organizations': what the primary key's prefix served before 0007.
    Index(None, "organization_id", "unapplied"),
)

payment_allocations = Table(
    "payment_allocations",
    metadata,
    Column("organization_id", Uuid, nullable=False),
    # The payment is (account_id, payment_id): payment ids are per account.
    Column("payment_id", String(255), nullable=False),
    Column("invoice_id", Uuid, ForeignKey("invoices.id"), nullable=False),
    Column("amount", FixedDecimal(BILLED), nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    PrimaryKeyConstraint("account_id", "payment_id", "invoice_id"),
    Index(None, "invoice_id"),
)

billing_history = Table(
    "billing_history",
    metadata,
    # 32 lowercase hex digits derived from what the item records: stable for ever (the Cloudflare id).
    Column("id", String(32), primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    # charge | payment | refund
    Column("type", String(30), nullable=False),
    # subscription | usage | payment | void
    Column("action", String(30), nullable=False),
    Column("description", String(255), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("amount", FixedDecimal(BILLED), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("invoice_id", Uuid, nullable=True),
    Column("payment_id", String(255), nullable=True),
    # Each order the Cloudflare dialect offers, ties broken by id as it breaks them, with the filter columns
    # at the end: a page is found in the index alone, and only its own rows are read from the table.
    Index(None, "organization_id", "occurred_at", "id"),
    Index(None, "organization_id", "type", "occurred_at", "id", "action"),
    Index(None, "organization_id", "action", "occurred_at", "id", "type"),
    Index(None, "account_id", "occurred_at", "id"),
)

# How many history items an organization has, per UTC day and per instant, changed in the same transaction as
# the items (docs/decisions.md, "Read paths at scale"): an organization's counts, and where a page far from
# the start begins, come from these rather than from counting or skipping its items.
billing_history_days = Table(
    "billing_history_days",
    metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    # Midnight UTC of the day the items occurred.
    Column("day", UtcDateTime, primary_key=True),
    Column("type", String(30), primary_key=True),
    Column("action", String(30), primary_key=True),
    Column("item_count", BigInteger, nullable=False),
)

billing_history_slices = Table(
    "billing_history_slices",
    metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("occurred_at", UtcDateTime, primary_key=True),
    Column("type", String(30), primary_key=True),
    Column("action", String(30), primary_key=True),
    # The first hex digit of the items' ids: the thousands of items a billing run dates at one instant, in
    # sixteenths (items of one instant are ordered by id).
    Column("shard", String(1), primary_key=True),
    Column("item_count", BigInteger, nullable=False),
)

# --- background jobs (issue 19) -------------------------------------------------------------------
# The one durable mechanism for work done later: a row written in the transaction that causes it, claimed by a
# worker inside `serve` (docs/webhooks.md, "Jobs"). A claim is a lease: `locked_until` and a fresh `lease` token;
# a worker killed mid-job leaves a lease that expires, and the job is claimed again.

jobs = Table(
    "jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    # Which handler runs it ("webhook.deliver", ...).
    Column("kind", String(64), nullable=False),
    # Optional: scheduling a (kind, unique_key) twice makes one job. Null keys never collide.
    Column("unique_key", String(255), nullable=True),
    Column("organization_id", Uuid, nullable=True),
    # JSON object: what the handler needs, by id (never a secret).
    Column("payload", Text, nullable=False),
    # pending | done | failed
    Column("status", String(8), nullable=False),
    # Due from this instant (the next attempt's time after a failure).
    Column("run_at", UtcDateTime, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    # The claim's token: only the worker holding the current lease may record the job's outcome.
    Column("lease", Uuid, nullable=True),
    # Claims so far (a claim whose worker died counts too).
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(1000), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "kind", "unique_key", unique=True),
    # What a worker's poll reads: the pending jobs that are due, soonest first.
    Index(None, "status", "run_at"),
)

# --- webhooks (CONTRACT §7) -----------------------------------------------------------------------

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("description", String(1000), nullable=True),
    # JSON list of event types; ["*"]: every type, those added later too.
    Column("event_types", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    # The signing secret, ``whsec_`` + base64. Kept as it is, unlike API keys: meterbook must sign with it
    # (docs/decisions.md, "Webhooks"). The previous one still signs until ``previous_secret_expires_at``.
    Column("secret", String(100), nullable=False),
    Column("previous_secret", String(100), nullable=True),
    Column("previous_secret_expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # What every emit reads: the organization's endpoints (one indexed query, also when there are none).
    Index(None, "organization_id", "created_at"),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    # The event's id: the ``webhook-id`` of every attempt to every endpoint.
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The body exactly as it is sent (JSON text, numbers as exact decimal text): every attempt signs the same bytes.
    Column("body", Text, nullable=False),
    Index(None, "organization_id", "created_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # Also the id of the job that delivers it.
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("endpoint_id", Uuid, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", Uuid, ForeignKey("webhook_events.id"), nullable=False),
    # pending | delivered | failed
    Column("status", String(10), nullable=False),
    Column("attempt_count", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Index(None, "endpoint_id", "created_at"),
    Index(None, "event_id"),
    # The age of the oldest undelivered event (a metric): the first pending row by creation.
    Index(None, "status", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", Uuid, ForeignKey("webhook_deliveries.id"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    # Null: no answer (refused, timed out, a destination refused before sending).
    Column("status_code", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("error", String(1000), nullable=True),
)

# --- alerts ----------------------------------------------------------------------------------------

alerts = Table(
    "alerts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    # Null: every account of the organization, those created later too.
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=True),
    Column("name", String(200), nullable=True),
    # credit_balance_below | spend_above | usage_above | feature_usage_above
    Column("type", String(32), nullable=False),
    # Credits, money in the account's currency, units, or a percent, by type: exact decimal text (up to 10**19, nine
    # decimals), as a month's units or an account's credits may pass what a 64-bit integer holds at 10**-9.
    Column("threshold", String(40), nullable=False),
    Column("product_id", String(100), nullable=True),
    Column("feature", String(200), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # What every batch of usage reads: the organization's alerts on its accounts or on all of them (one indexed
    # query, also when there are none).
    Index(None, "organization_id", "account_id"),
)

alert_versions = Table(
    "alert_versions",
    metadata,
    # One row per organization that ever had an alert, counting the changes to its alerts: every batch of usage
    # reads it (one key lookup) to know whether the alerts a server keeps in memory are still the organization's.
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("version", BigInteger, nullable=False),
)
alert_triggers = Table(
    "alert_triggers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("alert_id", Uuid, ForeignKey("alerts.id"), nullable=False),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    # "YYYY-MM" for the month types; the ordinal of the crossing ("1", "2", ...) for a balance alert.
    Column("period", String(20), nullable=False),
    # Exact decimal text: a month's units may pass what a 64-bit integer holds at 10**-9.
    Column("value", String(80), nullable=False),
    # The alert's threshold when it fired (exact decimal text, as the alert's).
    Column("threshold", String(40), nullable=False),
    Column("triggered_at", UtcDateTime, nullable=False),
    # Exactly one firing per alert, account and period, whatever the concurrency: inserts are insert-if-absent.
    Index(None, "alert_id", "account_id", "period", unique=True),
    Index(None, "alert_id", "triggered_at"),
)
