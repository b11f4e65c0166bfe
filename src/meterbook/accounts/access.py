"""Who may do what (contract §4), in one place: every route, dialect, console action and service asks here.

A key's kind bounds what it may do, whatever its scopes say:

- a **platform key** only creates organizations (and reaches nothing);
- an **organization key** is the operator's: with the scope an action needs, it may do anything in its
  organization;
- an **account key** is what a customer holds. It reads its account and subaccounts, reports their usage,
  creates subaccounts, keys and projects within its subtree, and changes the name, branding and e-mail of
  the accounts it reaches. Everything that decides money (catalog, plans, subscriptions, negotiated prices,
  features, limits, credits, payments, billing runs, voids, reverts, the money settings of an account,
  archiving, which ends its commitment, webhooks, alerts) is the operator's;
- the key of an **archived account** may read, never write.

Each action names the scope it needs and whether it is the operator's. :func:`authorize` is the one check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from meterbook.accounts.models import Principal
from meterbook.errors import Forbidden

__all__ = [
    "ACCOUNT_FIELDS_OF_CUSTOMERS",
    "ARCHIVE_ACCOUNTS",
    "CHANGE_ACCOUNTS",
    "CHANGE_ACCOUNT_TERMS",
    "CREATE_ACCOUNTS",
    "GRANT_CREDITS",
    "LIST_KEYS",
    "MANAGE_ALERTS",
    "MANAGE_CATALOG",
    "MANAGE_FEATURES",
    "MANAGE_KEYS",
    "MANAGE_PLANS",
    "MANAGE_PROJECTS",
    "MANAGE_WEBHOOKS",
    "READ_ACCOUNTS",
    "READ_ALERTS",
    "READ_BILLING",
    "READ_BILLING_RUNS",
    "READ_MONTHLY_USAGE",
    "READ_USAGE",
    "READ_WEBHOOKS",
    "RECORD_PAYMENTS",
    "REPORT_USAGE",
    "REVERT_USAGE",
    "RUN_BILLING",
    "SEE_PLANS",
    "SET_LIMITS",
    "SET_PRICES",
    "USE_CONSOLE",
    "VOID_INVOICES",
    "Action",
    "authorize",
]


@dataclass(frozen=True)
class Action:
    """Something a key may be allowed to do."""

    #: What the action is, as the error message names it ("grant credits").
    name: str
    #: The scope a key needs for it (``*`` holds every scope).
    scope: str
    #: Only an organization key may do it.
    operator: bool
    #: It changes stored data, so an archived account's key may not do it.
    writes: bool


def _reads(name: str, scope: str) -> Action:
    return Action(name, scope, operator=False, writes=False)


def _operator_reads(name: str, scope: str) -> Action:
    return Action(name, scope, operator=True, writes=False)


def _customer_writes(name: str, scope: str) -> Action:
    return Action(name, scope, operator=False, writes=True)


def _operator_writes(name: str, scope: str) -> Action:
    return Action(name, scope, operator=True, writes=True)


# --- the table: every action, its scope, and whose it is ------------------------------------------------

READ_ACCOUNTS: Final = _reads("read accounts", "accounts:read")
READ_USAGE: Final = _reads("read usage", "usage:read")
READ_BILLING: Final = _reads("read billing", "billing:read")
READ_MONTHLY_USAGE: Final = _reads("read monthly usage", "express-accounts-usage:read")
#: Listing keys shows who holds access: it needs the scope that manages them.
LIST_KEYS: Final = _reads("list API keys", "keys:write")
#: A billing run covers every account of the organization, so only the operator's key sees runs.
READ_BILLING_RUNS: Final = _operator_reads("see billing runs", "billing:read")
#: The console's plans pages are the operator's price list beside the catalog; a customer reads the plans it may
#: need through the API (``READ_BILLING``), and its own plan on its account's page.
SEE_PLANS: Final = _operator_reads("see the plans in the console", "billing:read")
#: The console is the operator's: it shows every account, so it takes an organization key with these.
USE_CONSOLE: Final = tuple(
    _operator_reads("use the console", scope) for scope in ("accounts:read", "billing:read", "usage:read")
)

CREATE_ACCOUNTS: Final = _customer_writes("create accounts", "accounts:write")
#: Which settings a customer may change is decided by :data:`CHANGE_ACCOUNT_TERMS` per field.
CHANGE_ACCOUNTS: Final = _customer_writes("change accounts", "accounts:write")
MANAGE_KEYS: Final = _customer_writes("create or revoke API keys", "keys:write")
REPORT_USAGE: Final = _customer_writes("report usage", "usage:write")
#: A project bills the account it names, which must be within the caller's reach: a way to report usage.
MANAGE_PROJECTS: Final = _customer_writes("create projects", "accounts:write")

CHANGE_ACCOUNT_TERMS: Final = _operator_writes(
    "change an account's money settings (currency, status, commitment, contract start, net terms, credit_min, "
    "stripe_customer_id)",
    "accounts:write",
)
ARCHIVE_ACCOUNTS: Final = _operator_writes("archive accounts", "accounts:write")
SET_LIMITS: Final = _operator_writes("set an account's feature limits", "accounts:write")
MANAGE_FEATURES: Final = _operator_writes("change features", "catalog:write")
MANAGE_CATALOG: Final = _operator_writes("change the catalog", "catalog:write")
#: Plans and their versions are the organization's price lists, beside the catalog.
MANAGE_PLANS: Final = _operator_writes("change plans", "catalog:write")
#: Which plan an account is on, and its negotiated prices, decide what it pays.
SET_PRICES: Final = _operator_writes("change an account's plan or negotiated prices", "billing:write")
GRANT_CREDITS: Final = _operator_writes("grant credits", "billing:write")
REVERT_USAGE: Final = _operator_writes("revert usage", "usage:write")
RECORD_PAYMENTS: Final = _operator_writes("record payments", "billing:write")
RUN_BILLING: Final = _operator_writes("run billing", "billing:write")
VOID_INVOICES: Final = _operator_writes("void invoices", "billing:write")
#: Webhooks carry the organization's billing events (invoices, payments, credits) for every account, so they are
#: the operator's, under the billing scopes that already guard those objects (docs/decisions.md, "Webhooks").
MANAGE_WEBHOOKS: Final = _operator_writes("manage webhook endpoints", "billing:write")
READ_WEBHOOKS: Final = _operator_reads("see webhook endpoints and deliveries", "billing:read")
#: Alerts are the operator's thresholds on its customers' credits and spend; an alert on every account and its
#: firings span accounts, and a customer already reads its own balance and usage: an account key sees none of them
#: (docs/decisions.md, "Alerts").
MANAGE_ALERTS: Final = _operator_writes("manage alerts", "billing:write")
READ_ALERTS: Final = _operator_reads("see alerts and their firings", "billing:read")


#: The account settings a customer may set on the accounts it reaches; every other one decides money.
ACCOUNT_FIELDS_OF_CUSTOMERS: Final = frozenset({"name", "branding", "email"})

_PLATFORM = "A platform key can only create organizations; use an organization or account key."


def authorize(principal: Principal, action: Action) -> None:
    """Refuse (:class:`Forbidden`, with what to do instead) unless ``principal`` may do ``action``."""
    if principal.is_platform:
        raise Forbidden(_PLATFORM)
    if not principal.has_scope(action.scope):
        raise Forbidden(f"The API key lacks the scope {action.scope!r} that this call needs.")
    if principal.account_id is None:
        return
    if action.operator:
        raise Forbidden(
            f"Only the operator may {action.name}: this is an account key, which a customer holds. "
            "Use an organization key."
        )
    if action.writes and principal.account_archived:
        raise Forbidden(f"The key's account is archived: its keys may read, never write, so it may not {action.name}.")
