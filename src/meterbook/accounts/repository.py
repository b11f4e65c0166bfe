"""Every SQL statement of the accounts domain, and no rule: callers pass what to filter on."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from meterbook.accounts.models import Account, ApiKey, Organization, Project
from meterbook.db.tables import accounts, api_keys, console_sessions, organizations, projects

__all__ = [
    "FoundKey",
    "archived_flags",
    "delete_console_sessions_expired_before",
    "end_console_session",
    "find_key",
    "find_organization_named",
    "get_account",
    "get_any_key",
    "get_key",
    "get_organization",
    "get_project",
    "insert_account",
    "insert_console_session",
    "insert_key",
    "insert_organization",
    "insert_project",
    "list_accounts",
    "list_keys",
    "list_organizations",
    "list_platform_keys",
    "list_projects",
    "live_console_session_key",
    "lock_accounts",
    "oldest_top_level_account",
    "reachable_ids",
    "revoke_key_and_descendants",
    "search_accounts",
    "set_key_expiry",
    "update_account",
]


# --- organizations ---------------------------------------------------------------------------------


def insert_organization(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(organizations).values(**values))


def get_organization(conn: Connection, organization_id: uuid.UUID) -> Organization | None:
    row = conn.execute(select(organizations).where(organizations.c.id == organization_id)).first()
    return None if row is None else Organization(**row._mapping)


def list_organizations(conn: Connection) -> list[Organization]:
    statement = select(organizations).order_by(organizations.c.created_at)
    return [Organization(**row._mapping) for row in conn.execute(statement)]


# --- accounts --------------------------------------------------------------------------------------

# The masked form of an account's oldest live key: what the Faraday dialect calls the account's api_key.
_account_key = (
    select(api_keys.c.masked)
    .where(api_keys.c.account_id == accounts.c.id, api_keys.c.revoked_at.is_(None))
    .order_by(api_keys.c.created_at, api_keys.c.id)
    .limit(1)
    .correlate(accounts)
    .scalar_subquery()
    .label("api_key")
)


def _within(organization_id: uuid.UUID, path_prefix: str | None) -> ColumnElement[bool]:
    condition = accounts.c.organization_id == organization_id
    if path_prefix is not None:
        # Paths are hex ids joined by "/", so a prefix match is exact; LIKE wildcards cannot occur.
        condition = and_(condition, accounts.c.path.startswith(path_prefix, autoescape=True))
    return condition


def reachable_ids(organization_id: uuid.UUID, path_prefix: str | None) -> Select[Any]:
    """The ids of the accounts a key reaches, as a subquery other domains' statements filter by."""
    return select(accounts.c.id).where(_within(organization_id, path_prefix))


def lock_accounts(conn: Connection, account_ids: Sequence[uuid.UUID]) -> None:
    """Serialize money movements per account on PostgreSQL (SQLite has one writer).

    ``FOR NO KEY UPDATE`` does not block the key-share locks that inserting usage takes on the account.
    """
    if conn.dialect.name == "postgresql" and account_ids:
        conn.execute(
            select(accounts.c.id)
            .where(accounts.c.id.in_(account_ids))
            # One order for every locker: no deadlocks.
            .order_by(accounts.c.id)
            .with_for_update(key_share=True)
        )


def _account(row: Row[Any]) -> Account:
    return Account(**row._mapping)


def insert_account(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(accounts).values(**values))


def get_account(
    conn: Connection, organization_id: uuid.UUID, account_id: uuid.UUID, path_prefix: str | None
) -> Account | None:
    statement = select(accounts, _account_key).where(accounts.c.id == account_id, _within(organization_id, path_prefix))
    row = conn.execute(statement).first()
    return None if row is None else _account(row)


def list_accounts(
    conn: Connection,
    organization_id: uuid.UUID,
    path_prefix: str | None,
    ids: Sequence[uuid.UUID] | None = None,
) -> list[Account]:
    statement = select(accounts, _account_key).where(_within(organization_id, path_prefix))
    if ids is not None:
        statement = statement.where(accounts.c.id.in_(ids))
    statement = statement.order_by(accounts.c.created_at, accounts.c.id)
    return [_account(row) for row in conn.execute(statement)]


_ARCHIVED_FLAGS = select(accounts.c.id, accounts.c.archived_at.is_not(None).label("archived")).where(
    accounts.c.organization_id == bindparam("organization_id"), accounts.c.id.in_(bindparam("ids", expanding=True))
)


def archived_flags(
    conn: Connection, organization_id: uuid.UUID, path_prefix: str | None, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, bool]:
    """Of the accounts among ``ids`` within reach, whether each is archived: the little that ingestion needs."""
    # Built once (every ingestion asks); an account key's reach narrows it further.
    statement = _ARCHIVED_FLAGS if path_prefix is None else _ARCHIVED_FLAGS.where(_within(organization_id, path_prefix))
    rows = conn.execute(statement, {"organization_id": organization_id, "ids": list(ids)})
    return {row.id: bool(row.archived) for row in rows}


def update_account(conn: Connection, account_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


# --- projects --------------------------------------------------------------------------------------


def insert_project(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(projects).values(**values))


def get_project(conn: Connection, project_id: uuid.UUID) -> Project | None:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).first()
    return None if row is None else Project(**row._mapping)


def list_projects(conn: Connection, organization_id: uuid.UUID, path_prefix: str | None) -> list[Project]:
    statement = select(projects).where(projects.c.organization_id == organization_id)
    if path_prefix is not None:
        # An account key sees the projects billed to an account it reaches.
        reachable = select(accounts.c.id).where(_within(organization_id, path_prefix))
        statement = statement.where(projects.c.billing_account_id.in_(reachable))
    statement = statement.order_by(projects.c.created_at, projects.c.id)
    return [Project(**row._mapping) for row in conn.execute(statement)]


# --- API keys --------------------------------------------------------------------------------------

_key_columns = (
    api_keys.c.id,
    api_keys.c.organization_id,
    api_keys.c.account_id,
    api_keys.c.name,
    api_keys.c.masked,
    api_keys.c.scopes,
    api_keys.c.created_at,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
    api_keys.c.created_by_key_id,
)


def _key(row: Any) -> ApiKey:
    values = dict(row._mapping)
    values["scopes"] = frozenset(values["scopes"].split())
    return ApiKey(**values)


def insert_key(conn: Connection, values: Mapping[str, Any]) -> None:
    stored = dict(values)
    stored["scopes"] = " ".join(sorted(stored["scopes"]))
    conn.execute(insert(api_keys).values(**stored))


# Every request authenticates: built once, not per request.
_FIND_KEY = (
    select(*_key_columns, api_keys.c.secret_hash, accounts.c.path, accounts.c.archived_at.label("account_archived_at"))
    .select_from(api_keys.outerjoin(accounts, accounts.c.id == api_keys.c.account_id))
    .where(api_keys.c.id == bindparam("key_id"))
)


@dataclass(frozen=True)
class FoundKey:
    """A key as authentication needs it: the key, its secret's hash, and its account's path and state."""

    key: ApiKey
    secret_hash: str
    account_path: str | None
    account_archived: bool


def find_key(conn: Connection, key_id: uuid.UUID) -> FoundKey | None:
    row = conn.execute(_FIND_KEY, {"key_id": key_id}).first()
    if row is None:
        return None
    values = dict(row._mapping)
    secret_hash, path, archived_at = values.pop("secret_hash"), values.pop("path"), values.pop("account_archived_at")
    values["scopes"] = frozenset(values["scopes"].split())
    return FoundKey(ApiKey(**values), secret_hash, path, archived_at is not None)


def get_key(conn: Connection, organization_id: uuid.UUID, key_id: uuid.UUID, path_prefix: str | None) -> ApiKey | None:
    statement = select(*_key_columns).where(api_keys.c.id == key_id, api_keys.c.organization_id == organization_id)
    statement = _keys_within(statement, organization_id, path_prefix)
    row = conn.execute(statement).first()
    return None if row is None else _key(row)


def _keys_within(statement: Any, organization_id: uuid.UUID, path_prefix: str | None) -> Any:
    if path_prefix is None:
        return statement
    reachable = select(accounts.c.id).where(_within(organization_id, path_prefix))
    return statement.where(api_keys.c.account_id.in_(reachable))


def list_keys(conn: Connection, organization_id: uuid.UUID, path_prefix: str | None) -> list[ApiKey]:
    statement = select(*_key_columns).where(api_keys.c.organization_id == organization_id)
    statement = _keys_within(statement, organization_id, path_prefix).order_by(api_keys.c.created_at, api_keys.c.id)
    return [_key(row) for row in conn.execute(statement)]


def _lineage(key_id: uuid.UUID) -> Select[Any]:
    """The ids of the key and of every key made below it, at any depth."""
    lineage = select(api_keys.c.id).where(api_keys.c.id == key_id).cte("lineage", recursive=True)
    lineage = lineage.union(select(api_keys.c.id).where(api_keys.c.created_by_key_id == lineage.c.id))
    return select(lineage.c.id)


def revoke_key_and_descendants(conn: Connection, key_id: uuid.UUID, revoked_at: datetime) -> int:
    """Revoke the key and every key made below it that is not revoked yet; how many were revoked."""
    result = conn.execute(
        update(api_keys)
        .where(api_keys.c.id.in_(_lineage(key_id)), api_keys.c.revoked_at.is_(None))
        .values(revoked_at=revoked_at)
    )
    return int(result.rowcount)


def insert_console_session(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(console_sessions).values(**values))


def live_console_session_key(conn: Connection, session_id: uuid.UUID, now: datetime) -> uuid.UUID | None:
    """The key a console session was opened with, if the session has neither ended nor expired."""
    statement = select(console_sessions.c.key_id).where(
        console_sessions.c.id == session_id,
        console_sessions.c.ended_at.is_(None),
        console_sessions.c.expires_at > now,
    )
    found: uuid.UUID | None = conn.execute(statement).scalar_one_or_none()
    return found


def end_console_session(conn: Connection, session_id: uuid.UUID, now: datetime) -> None:
    conn.execute(
        update(console_sessions)
        .where(console_sessions.c.id == session_id, console_sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )


def delete_console_sessions_expired_before(conn: Connection, moment: datetime) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < moment))


def list_platform_keys(conn: Connection) -> list[ApiKey]:
    """Every platform key (no organization, no account), oldest first, revoked ones included."""
    statement = (
        select(*_key_columns)
        .where(api_keys.c.organization_id.is_(None), api_keys.c.account_id.is_(None))
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return [_key(row) for row in conn.execute(statement)]


def get_any_key(conn: Connection, key_id: uuid.UUID) -> ApiKey | None:
    """A key by id, whoever it belongs to: for the operator's CLI, which has the database and no key."""
    row = conn.execute(select(*_key_columns).where(api_keys.c.id == key_id)).first()
    return None if row is None else _key(row)


def set_key_expiry(conn: Connection, key_id: uuid.UUID, expires_at: datetime) -> None:
    """Make the key expire at ``expires_at``, and every key made below it no later than that."""
    conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id.in_(_lineage(key_id)),
            or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > expires_at, api_keys.c.id == key_id),
        )
        .values(expires_at=expires_at)
    )


def find_organization_named(conn: Connection, name: str) -> Organization | None:
    statement = select(organizations).where(organizations.c.name == name).order_by(organizations.c.created_at).limit(1)
    row = conn.execute(statement).first()
    return None if row is None else Organization(**row._mapping)


def oldest_top_level_account(conn: Connection, organization_id: uuid.UUID) -> Account | None:
    """The organization's oldest account that has no parent and is not archived."""
    statement = (
        select(accounts, _account_key)
        .where(
            accounts.c.organization_id == organization_id,
            accounts.c.parent_account_id.is_(None),
            accounts.c.archived_at.is_(None),
        )
        .order_by(accounts.c.created_at, accounts.c.id)
        .limit(1)
    )
    row = conn.execute(statement).first()
    return None if row is None else _account(row)


def search_accounts(
    conn: Connection, organization_id: uuid.UUID, path_prefix: str | None, text: str, exact_id: uuid.UUID | None
) -> list[Account]:
    """The reachable accounts whose name or e-mail contains ``text`` (any case), or whose id is ``exact_id``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matches: list[ColumnElement[bool]] = [
        accounts.c.name.ilike(f"%{escaped}%", escape="\\"),
        accounts.c.email.ilike(f"%{escaped}%", escape="\\"),
    ]
    if exact_id is not None:
        matches.append(accounts.c.id == exact_id)
    statement = (
        select(accounts, _account_key)
        .where(_within(organization_id, path_prefix), or_(*matches))
        .order_by(accounts.c.created_at, accounts.c.id)
    )
    return [_account(row) for row in conn.execute(statement)]
