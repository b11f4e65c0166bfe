"""The rules of organizations, accounts, projects and keys. Services never commit: the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection

from meterbook.accounts import keys, repository
from meterbook.accounts.access import ACCOUNT_FIELDS_OF_CUSTOMERS, CHANGE_ACCOUNT_TERMS, authorize
from meterbook.accounts.models import (
    ALL_SCOPES,
    PLATFORM_SCOPE,
    Account,
    ApiKey,
    CreatedKey,
    Organization,
    Principal,
    Project,
)
from meterbook.accounts.reach import require_organization, resolve_account, within
from meterbook.accounts.schemas import (
    AccountCreate,
    AccountSettings,
    KeyCreate,
    OrganizationCreate,
    ProjectCreate,
)
from meterbook.errors import (
    Conflict,
    ExpiredApiKey,
    FieldError,
    Forbidden,
    InvalidAuthorization,
    MalformedApiKey,
    NotFound,
    SessionEnded,
    ValidationFailed,
    field_errors_from_pydantic,
)
from meterbook.kit.ids import new_id
from meterbook.kit.merge_patch import merge_patch
from meterbook.kit.time import utcnow

__all__ = [
    "archive_account",
    "authenticate",
    "authenticate_basic",
    "authenticate_email_key",
    "billing_account_for",
    "create_account",
    "create_key",
    "create_organization",
    "create_organization_key",
    "create_platform_key",
    "create_project",
    "current_account",
    "end_console_session",
    "expire_any_key",
    "get_account",
    "get_organization",
    "list_accounts",
    "list_keys",
    "list_organizations",
    "list_platform_keys",
    "list_projects",
    "lock_accounts",
    "organization_accounts",
    "organization_named",
    "principal_for_session",
    "revoke_any_key",
    "revoke_key",
    "search_accounts",
    "start_console_session",
    "update_account",
]

#: Subaccounts nest at most this deep (a path of 16 ids fits the path column with room to spare).
MAX_DEPTH = 16
_UNKNOWN_KEY = "The API key is not valid: it is unknown or has been revoked."


# --- authentication --------------------------------------------------------------------------------


def authenticate(conn: Connection, token: str) -> Principal:
    """The principal a bearer token stands for."""
    parsed = keys.parse_key(token)
    if parsed is None:
        raise MalformedApiKey()
    return _verify(conn, parsed.key_id, parsed.secret)


def authenticate_basic(conn: Connection, key_id_text: str, secret: str) -> Principal:
    """The principal for HTTP Basic credentials: the key's id as user name, its secret as password."""
    key_id = keys.parse_key_id(key_id_text)
    if key_id is None:
        raise MalformedApiKey("The user name is not an API key id.")
    return _verify(conn, key_id, secret)


def _verify(conn: Connection, key_id: uuid.UUID, secret: str) -> Principal:
    found = repository.find_key(conn, key_id)
    if found is None:
        # Hash anyway, so that an unknown id costs the same time as a wrong secret.
        keys.secret_matches(secret, "0" * 64)
        raise InvalidAuthorization(_UNKNOWN_KEY)
    if not keys.secret_matches(secret, found.secret_hash):
        raise InvalidAuthorization(_UNKNOWN_KEY)
    return _principal_of_live_key(found)


def _principal_of_live_key(found: repository.FoundKey) -> Principal:
    """The principal of a key whose secret is proven, refused if it has been revoked or has expired."""
    key = found.key
    if key.revoked_at is not None:
        raise InvalidAuthorization(_UNKNOWN_KEY)
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise ExpiredApiKey()
    return Principal(
        key_id=key.id,
        organization_id=key.organization_id,
        account_id=key.account_id,
        account_path=found.account_path,
        scopes=key.scopes,
        expires_at=key.expires_at,
        account_archived=found.account_archived,
    )


def authenticate_email_key(conn: Connection, email: str, token: str) -> Principal:
    """The principal for ``X-Auth-Email`` + ``X-Auth-Key``: the key, vouched for by its account's e-mail.

    Only an account can have an e-mail, so an organization (or platform) key is refused with this
    scheme however valid it is. The e-mail is compared ignoring case: people write it in any case.
    """
    principal = authenticate(conn, token)
    if principal.organization_id is None or principal.account_id is None:
        raise Forbidden(
            "This key belongs to no account, so no e-mail goes with it: send it as 'Authorization: Bearer <key>'."
        )
    account = repository.get_account(conn, principal.organization_id, principal.account_id, None)
    if account is None or account.email is None or account.email.casefold() != email.strip().casefold():
        raise Forbidden("X-Auth-Email is not the e-mail of the key's account.")
    return principal


# --- keys ------------------------------------------------------------------------------------------


def _insert_key(
    conn: Connection,
    *,
    organization_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    scopes: frozenset[str],
    name: str | None,
    expires_at: datetime | None = None,
    created_by: Principal | None = None,
) -> CreatedKey:
    key_id, secret = new_id(), keys.new_secret()
    token = keys.token_for(key_id, secret)
    values: dict[str, Any] = {
        "id": key_id,
        "organization_id": organization_id,
        "account_id": account_id,
        "name": name,
        "secret_hash": keys.hash_secret(secret),
        "masked": keys.mask(token),
        "scopes": scopes,
        "created_at": utcnow(),
        "expires_at": expires_at,
        "revoked_at": None,
        "created_by_key_id": None if created_by is None else created_by.key_id,
    }
    repository.insert_key(conn, values)
    values.pop("secret_hash")
    return CreatedKey(key=ApiKey(**values), token=token)


def create_platform_key(conn: Connection, name: str | None = None, expires_at: datetime | None = None) -> CreatedKey:
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed.field("expires_at", "must be in the future, e.g. 2030-01-01T00:00:00Z", "minimum")
    return _insert_key(
        conn,
        organization_id=None,
        account_id=None,
        scopes=frozenset({PLATFORM_SCOPE}),
        name=name or "platform",
        expires_at=expires_at,
    )


def create_organization_key(conn: Connection, organization_id: uuid.UUID, name: str | None = None) -> CreatedKey:
    """A new key with every scope for an existing organization: for operator tools with database access (the CLI)."""
    if repository.get_organization(conn, organization_id) is None:
        raise NotFound(f"No organization with id {organization_id} was found.")
    return _insert_key(conn, organization_id=organization_id, account_id=None, scopes=frozenset({"*"}), name=name)


def _granted_scopes(principal: Principal, requested: Sequence[str] | None) -> frozenset[str]:
    if requested is None:
        return principal.scopes
    errors = [
        FieldError(f"body.scopes.{index}", f"{scope!r} is not a scope", "enum")
        for index, scope in enumerate(requested)
        if scope != "*" and scope not in ALL_SCOPES
    ]
    if not requested:
        errors.append(FieldError("body.scopes", "must name at least one scope", "too_short"))
    if errors:
        raise ValidationFailed(errors)
    wanted = frozenset(requested)
    if "*" not in principal.scopes:
        beyond = sorted(wanted - principal.scopes)
        if beyond:
            raise Forbidden(f"A key cannot grant scopes it does not hold itself: {', '.join(beyond)}.")
    return wanted


def _granted_expiry(principal: Principal, requested: datetime | None) -> datetime | None:
    """A new key's expiry: as asked, never later than its maker's (so no key outlives the key that made it)."""
    if requested is not None and requested <= utcnow():
        raise ValidationFailed.field("body.expires_at", "must be in the future, e.g. 2030-01-01T00:00:00Z", "minimum")
    if principal.expires_at is None:
        return requested
    if requested is None:
        return principal.expires_at
    if requested > principal.expires_at:
        raise Forbidden(
            f"A key cannot make a key that outlives it: this key expires at {principal.expires_at.isoformat()}; "
            "give an earlier expires_at, or none to expire with it."
        )
    return requested


def create_key(conn: Connection, principal: Principal, data: KeyCreate) -> CreatedKey:
    organization_id = require_organization(principal)
    account_id = data.account_id if data.account_id is not None else principal.account_id
    if account_id is not None:
        account_id = _reachable_reference(conn, principal, account_id, "body.account_id").id
    return _insert_key(
        conn,
        organization_id=organization_id,
        account_id=account_id,
        scopes=_granted_scopes(principal, data.scopes),
        name=data.name,
        expires_at=_granted_expiry(principal, data.expires_at),
        created_by=principal,
    )


def list_keys(conn: Connection, principal: Principal) -> list[ApiKey]:
    return repository.list_keys(conn, *within(principal))


def revoke_key(conn: Connection, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    """Revoke a key the caller reaches, and with it every key it made (at any depth), at once."""
    organization_id, path_prefix = within(principal)
    key = repository.get_key(conn, organization_id, key_id, path_prefix)
    if key is None:
        raise NotFound(f"No API key with id {key_id} was found.")
    now = utcnow()
    # Even when the key itself is revoked already: keys it made before a revocation that predates
    # the cascade are revoked now.
    repository.revoke_key_and_descendants(conn, key_id, now)
    return key if key.revoked_at is not None else replace(key, revoked_at=now)


# --- the operator's CLI: keys by id, whoever holds them ------------------------------------------------


def list_platform_keys(conn: Connection) -> list[ApiKey]:
    """Every platform key, oldest first, revoked ones included (their secrets are never shown again)."""
    return repository.list_platform_keys(conn)


def _any_key(conn: Connection, key_id: uuid.UUID) -> ApiKey:
    key = repository.get_any_key(conn, key_id)
    if key is None:
        raise NotFound(f"No API key with id {key_id} was found.")
    return key


def revoke_any_key(conn: Connection, key_id: uuid.UUID) -> tuple[ApiKey, int]:
    """Revoke a key by id (the CLI's operator has the database, not a key), with the keys it made.

    Returns the key and how many of the keys it made this revoked (those revoked before are not counted).
    """
    key = _any_key(conn, key_id)
    now = utcnow()
    revoked = repository.revoke_key_and_descendants(conn, key_id, now)
    if key.revoked_at is not None:
        return key, revoked
    return replace(key, revoked_at=now), revoked - 1


def expire_any_key(conn: Connection, key_id: uuid.UUID, expires_at: datetime) -> ApiKey:
    """Make a key (and every key it made) expire at ``expires_at``; now or a past instant ends it at once."""
    key = _any_key(conn, key_id)
    repository.set_key_expiry(conn, key_id, expires_at)
    return replace(key, expires_at=expires_at)


# --- organizations ---------------------------------------------------------------------------------


def organization_named(conn: Connection, name: str) -> Organization | None:
    """The oldest organization of that name (for tools such as the demo; names are not unique)."""
    return repository.find_organization_named(conn, name)


def create_organization(
    conn: Connection, principal: Principal, data: OrganizationCreate
) -> tuple[Organization, CreatedKey]:
    if not principal.is_platform:
        raise Forbidden("Only a platform key (made with `meterbook keys create --platform`) can create organizations.")
    organization = Organization(id=new_id(), name=data.name, default_billing_account_id=None, created_at=utcnow())
    repository.insert_organization(conn, vars(organization))
    created = _insert_key(
        conn,
        organization_id=organization.id,
        account_id=None,
        scopes=frozenset({"*"}),
        name="organization key",
    )
    return organization, created


# --- accounts --------------------------------------------------------------------------------------


def get_account(conn: Connection, principal: Principal, account_id: uuid.UUID) -> Account:
    return resolve_account(conn, principal, account_id)


def current_account(conn: Connection, principal: Principal) -> Account:
    require_organization(principal)
    if principal.account_id is None:
        raise NotFound("An organization key has no current account: use an account key, or GET /v1/accounts.")
    return resolve_account(conn, principal, principal.account_id)


def list_accounts(conn: Connection, principal: Principal, ids: Sequence[uuid.UUID] | None = None) -> list[Account]:
    """Every account the key reaches, oldest first; ``ids`` narrows the list (ids out of reach are left out)."""
    return repository.list_accounts(conn, *within(principal), ids=ids)


def list_organizations(conn: Connection) -> list[Organization]:
    """Every organization, oldest first: for the operator's commands (no key involved)."""
    return repository.list_organizations(conn)


def organization_accounts(conn: Connection, organization_id: uuid.UUID) -> list[Account]:
    """Every account of the organization, oldest first: what a billing run walks (no key involved)."""
    return repository.list_accounts(conn, organization_id, None)


def lock_accounts(conn: Connection, account_ids: Sequence[uuid.UUID]) -> None:
    """Serialize the money movements of these accounts with any other transaction's (PostgreSQL)."""
    repository.lock_accounts(conn, account_ids)


def _reachable_reference(conn: Connection, principal: Principal, account_id: uuid.UUID, path: str) -> Account:
    """An account named inside a request body: out of reach is a wrong field, worded as for an unknown id."""
    try:
        return resolve_account(conn, principal, account_id)
    except NotFound:
        raise ValidationFailed.field(path, f"no account with id {account_id} was found", "not_found") from None


#: What a customer may set when it creates a subaccount: its own fields, and the currency it is billed in.
_CUSTOMER_CREATE_FIELDS = ACCOUNT_FIELDS_OF_CUSTOMERS | {"currency"}


def _authorize_settings(principal: Principal, changed: set[str]) -> None:
    """Refuse a change of the account settings that decide money unless the operator makes it."""
    if changed:
        try:
            authorize(principal, CHANGE_ACCOUNT_TERMS)
        except Forbidden as refused:
            fields = ", ".join(sorted(changed))
            raise Forbidden(f"{refused.message} (the request changes: {fields})") from None


def _stored_settings(settings: AccountSettings, created_at: datetime) -> dict[str, Any]:
    return {
        "name": settings.name,
        "email": settings.email,
        "currency": settings.currency,
        "status": settings.status,
        # An error message belongs to the error status only; any other status clears it.
        "status_error": settings.status_error if settings.status == "error" else None,
        "suppress_from_reports": settings.branding.suppress_from_reports,
        "monthly_cost": settings.commitment.monthly_cost,
        "renewal_date": settings.commitment.renewal_date,
        "contract_started_at": settings.contract_started_at or created_at,
        "net_terms_days": settings.net_terms_days,
        "credit_min": settings.credit_min,
        "stripe_customer_id": settings.stripe_customer_id,
    }


def create_account(conn: Connection, principal: Principal, data: AccountCreate) -> Account:
    """A new account (a subaccount when it has a parent) with its first account key, shown whole once.

    A customer (an account key) may name its subaccount, brand it, give its e-mail and currency; the
    settings that decide money keep their defaults unless the operator sets them.
    """
    organization_id = require_organization(principal)
    defaults = AccountCreate(name=data.name)
    _authorize_settings(
        principal,
        {
            name
            for name in AccountSettings.model_fields
            if name not in _CUSTOMER_CREATE_FIELDS and getattr(data, name) != getattr(defaults, name)
        },
    )
    parent_id = data.parent_account_id if data.parent_account_id is not None else principal.account_id
    parent_path = ""
    if parent_id is not None:
        parent = _reachable_reference(conn, principal, parent_id, "body.parent_account_id")
        if parent.archived_at is not None:
            raise ValidationFailed.field("body.parent_account_id", "the parent account is archived", "archived")
        if parent.path.count("/") >= MAX_DEPTH:
            raise ValidationFailed.field(
                "body.parent_account_id", f"subaccounts nest at most {MAX_DEPTH} levels deep", "too_deep"
            )
        parent_id, parent_path = parent.id, parent.path
    now, account_id = utcnow(), new_id()
    values = {
        "id": account_id,
        "organization_id": organization_id,
        "parent_account_id": parent_id,
        "path": f"{parent_path}{account_id.hex}/",
        **_stored_settings(data, now),
        "status_changed_at": now,
        "created_at": now,
        "updated_at": now,
        "archived_at": None,
        "last_read_input_at": None,
        "last_updated_config_at": now,
        "last_updated_output_at": None,
    }
    repository.insert_account(conn, values)
    # The account's first key is made by the caller's key: no more scopes, no later expiry, and revoked with it.
    created = _insert_key(
        conn,
        organization_id=organization_id,
        account_id=account_id,
        scopes=principal.scopes,
        name="account key",
        expires_at=principal.expires_at,
        created_by=principal,
    )
    # Read back, so the reply shows what was stored (0.30 is stored, and shown, as 0.3).
    return replace(_stored(conn, organization_id, account_id), api_key=created.token)


def _stored(conn: Connection, organization_id: uuid.UUID, account_id: uuid.UUID) -> Account:
    account = repository.get_account(conn, organization_id, account_id, None)
    assert account is not None, "an account written in this transaction is readable in it"
    return account


def _settings_document(account: Account) -> dict[str, Any]:
    """The account's settings as the JSON document a merge patch applies to."""
    document: dict[str, Any] = {
        "name": account.name,
        "email": account.email,
        "currency": account.currency,
        "status": account.status,
        "status_error": account.status_error,
        "branding": {"suppress_from_reports": account.suppress_from_reports},
        "commitment": {"monthly_cost": account.monthly_cost, "renewal_date": account.renewal_date},
        "contract_started_at": account.contract_started_at,
        "net_terms_days": account.net_terms_days,
        "credit_min": account.credit_min,
        "stripe_customer_id": account.stripe_customer_id,
    }
    stored: dict[str, Any] = merge_patch({}, document)  # drops the nulls, as the patch would
    return stored


def update_account(conn: Connection, principal: Principal, account_id: uuid.UUID, patch: Mapping[str, Any]) -> Account:
    """Apply a JSON merge patch (RFC 7396) to the account's settings; the result must be valid as a whole."""
    account = resolve_account(conn, principal, account_id)
    if account.archived_at is not None:
        raise Conflict(f"Account {account_id} is archived; archived accounts no longer change.")
    patch = dict(patch)
    if "parent_account_id" in patch and str(patch.pop("parent_account_id")) != str(account.parent_account_id):
        raise ValidationFailed.field(
            "body.parent_account_id", "cannot be changed after the account is created", "read_only"
        )
    current = _settings_document(account)
    document = merge_patch(current, patch)
    try:
        settings = AccountSettings.model_validate(document)
    except ValidationError as error:
        raise ValidationFailed(field_errors_from_pydantic(error.errors(), prefix=["body"])) from None
    before = AccountSettings.model_validate(current)
    # A field sent with its current value changes nothing, so a client that sends the whole account may.
    _authorize_settings(
        principal,
        {
            name
            for name in AccountSettings.model_fields
            if name not in ACCOUNT_FIELDS_OF_CUSTOMERS and getattr(settings, name) != getattr(before, name)
        },
    )
    now = utcnow()
    values = _stored_settings(settings, account.created_at)
    if values["status"] != account.status:
        values["status_changed_at"] = now
    values["updated_at"] = values["last_updated_config_at"] = now
    repository.update_account(conn, account.id, values)
    return _stored(conn, account.organization_id, account.id)


def archive_account(conn: Connection, principal: Principal, account_id: uuid.UUID) -> Account:
    """Archive the account: it stays readable and billable history stays, but it no longer changes."""
    account = resolve_account(conn, principal, account_id)
    if account.archived_at is not None:
        return account
    now = utcnow()
    repository.update_account(conn, account.id, {"archived_at": now, "updated_at": now})
    return replace(account, archived_at=now, updated_at=now)


# --- projects --------------------------------------------------------------------------------------


def create_project(conn: Connection, principal: Principal, data: ProjectCreate) -> Project:
    organization_id = require_organization(principal)
    billing_account_id = data.billing_account_id if data.billing_account_id is not None else principal.account_id
    if billing_account_id is not None:
        billing_account_id = _reachable_reference(conn, principal, billing_account_id, "body.billing_account_id").id
    project = Project(
        id=new_id(),
        organization_id=organization_id,
        name=data.name,
        billing_account_id=billing_account_id,
        created_at=utcnow(),
    )
    repository.insert_project(conn, vars(project))
    return project


def list_projects(conn: Connection, principal: Principal) -> list[Project]:
    return repository.list_projects(conn, *within(principal))


# --- billing accounts ------------------------------------------------------------------------------


def _default_billing_account(conn: Connection, principal: Principal, organization_id: uuid.UUID) -> Account:
    """The organization's default billing account: the one it names, if live, else its oldest live top-level one.

    An account key that does not reach that account bills its own account instead.
    """
    organization = repository.get_organization(conn, organization_id)
    default: Account | None = None
    if organization is not None and organization.default_billing_account_id is not None:
        named = repository.get_account(conn, organization_id, organization.default_billing_account_id, None)
        if named is not None and named.archived_at is None:
            default = named
    if default is None:
        default = repository.oldest_top_level_account(conn, organization_id)
    if default is not None and (principal.account_path is None or default.path.startswith(principal.account_path)):
        return default
    if principal.account_id is not None:
        return resolve_account(conn, principal, principal.account_id)
    raise NotFound("billing account not found: the organization has no active top-level account to bill by default")


def billing_account_for(
    conn: Connection,
    principal: Principal,
    organization_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    billing_id: uuid.UUID | None,
) -> Account:
    """The billing account a call names (the Frontier dialect's rule).

    The organization is named directly, or found through a project, never both. The billing account
    is ``billing_id`` if given, else the project's billing account, else the organization's default.
    Anything outside the key's reach (another organization, a project or account the key does not
    reach) is answered as not found, with the same words as for one that does not exist.
    """
    own = require_organization(principal)
    if organization_id is not None and project_id is not None:
        raise ValidationFailed.field("body.project_id", "give org_id or project_id, not both", "exclusive")
    if organization_id is None and project_id is None:
        raise ValidationFailed.field("body.org_id", "org_id or project_id is required", "missing")
    if organization_id is not None and organization_id != own:
        raise NotFound("organization not found")
    project_account_id: uuid.UUID | None = None
    if project_id is not None:
        project = repository.get_project(conn, project_id)
        if project is None or project.organization_id != own:
            raise NotFound("project not found")
        if principal.account_path is not None:
            # An account key reaches the projects billed to an account it reaches (as in list_projects).
            billed = project.billing_account_id
            if billed is None or repository.get_account(conn, own, billed, principal.account_path) is None:
                raise NotFound("project not found")
        project_account_id = project.billing_account_id
    account_id = billing_id if billing_id is not None else project_account_id
    if account_id is None:
        return _default_billing_account(conn, principal, own)
    account = repository.get_account(conn, own, account_id, principal.account_path)
    if account is None:
        raise NotFound("billing account not found")
    return account


# --- the console -----------------------------------------------------------------------------------


#: Ended and expired console sessions are kept this long (for an operator reading the table), then deleted.
_ENDED_SESSIONS_KEPT = timedelta(days=30)


def start_console_session(conn: Connection, principal: Principal, lifetime: timedelta) -> tuple[uuid.UUID, datetime]:
    """Open a console session for a key whose secret was just proven: its id and when it expires."""
    now = utcnow()
    session_id, expires_at = new_id(), now + lifetime
    repository.delete_console_sessions_expired_before(conn, now - _ENDED_SESSIONS_KEPT)
    repository.insert_console_session(
        conn,
        {"id": session_id, "key_id": principal.key_id, "created_at": now, "expires_at": expires_at, "ended_at": None},
    )
    return session_id, expires_at


def end_console_session(conn: Connection, session_id: uuid.UUID) -> None:
    """Sign out: the session ends on the server, so any copy of its cookie is refused from now on."""
    repository.end_console_session(conn, session_id, utcnow())


def principal_for_session(conn: Connection, session_id: uuid.UUID) -> Principal:
    """The principal of a live console session: one that was opened with a proven key and has not ended.

    Only for a caller that holds its own proof of that sign-in (the signed cookie): the key is checked
    as a bearer token is, except for its secret, so a key revoked or expired since then ends the session.
    """
    key_id = repository.live_console_session_key(conn, session_id, utcnow())
    if key_id is None:
        raise SessionEnded()
    found = repository.find_key(conn, key_id)
    if found is None:
        raise InvalidAuthorization(_UNKNOWN_KEY)
    return _principal_of_live_key(found)


def get_organization(conn: Connection, principal: Principal) -> Organization:
    """The organization the key acts for."""
    organization = repository.get_organization(conn, require_organization(principal))
    if organization is None:
        raise NotFound("The key's organization was not found.")
    return organization


def search_accounts(conn: Connection, principal: Principal, text: str) -> list[Account]:
    """The reachable accounts whose name or e-mail holds ``text`` (ignoring case), or whose id it is; oldest first."""
    organization_id, path_prefix = within(principal)
    # PostgreSQL text cannot hold NUL, and no name or e-mail contains one.
    text = text.replace("\x00", "").strip()
    if not text:
        return repository.list_accounts(conn, organization_id, path_prefix)
    try:
        exact_id: uuid.UUID | None = uuid.UUID(text)
    except ValueError:
        exact_id = None
    return repository.search_accounts(conn, organization_id, path_prefix, text, exact_id)
