"""The reach rule (contract invariant 8), in one place.

An organization key reaches every account of its organization; an account key reaches its account
and that account's subaccounts, at any depth; a platform key reaches no account. Anything outside
a key's reach is answered exactly as if it did not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Connection

from meterbook.accounts import repository
from meterbook.accounts.models import Account, Principal
from meterbook.errors import Forbidden, NotFound

__all__ = ["reachable_archived_flags", "require_organization", "resolve_account", "resolve_accounts", "within"]


def require_organization(principal: Principal) -> uuid.UUID:
    """The organization the key acts for; a platform key acts for none."""
    if principal.organization_id is None:
        raise Forbidden("A platform key can only create organizations; use an organization or account key.")
    return principal.organization_id


def within(principal: Principal) -> tuple[uuid.UUID, str | None]:
    """The filter every query over accounts applies: the organization, and the path prefix of an account key."""
    return require_organization(principal), principal.account_path


def resolve_account(conn: Connection, principal: Principal, account_id: uuid.UUID) -> Account:
    """The account, if the key reaches it; :class:`NotFound` otherwise, with the same words either way."""
    organization_id, path_prefix = within(principal)
    account = repository.get_account(conn, organization_id, account_id, path_prefix)
    if account is None:
        raise NotFound(f"No account with id {account_id} was found.")
    return account


def resolve_accounts(
    conn: Connection, principal: Principal, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Account]:
    """The accounts among ``account_ids`` that the key reaches, in one query; the caller decides what a gap means."""
    organization_id, path_prefix = within(principal)
    wanted = list(set(account_ids))
    if not wanted:
        return {}
    found = repository.list_accounts(conn, organization_id, path_prefix, ids=wanted)
    return {account.id: account for account in found}


def reachable_archived_flags(
    conn: Connection, principal: Principal, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, bool]:
    """Of the accounts among ``account_ids`` that the key reaches, whether each is archived (one lean query)."""
    organization_id, path_prefix = within(principal)
    wanted = list(set(account_ids))
    if not wanted:
        return {}
    return repository.archived_flags(conn, organization_id, path_prefix, wanted)
