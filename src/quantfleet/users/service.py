"""The user service: users, API tokens and quotas over the job database (the ``users`` and ``api_tokens`` tables).

A token is ``qf_`` followed by 32 random bytes, URL-safe base64: shown once by
:meth:`UserService.create_token`, stored only as its sha256 hash. A hash is
enough (no slow KDF, no pepper): the secret has 256 random bits, so nothing
can be guessed from a leaked hash, and a lookup by hash costs one index probe.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from quantfleet.core.errors import UserError
from quantfleet.jobs.clock import Clock, SystemClock
from quantfleet.store import Database, DatabaseUnavailable
from quantfleet.store.models import api_tokens, users
from quantfleet.users.errors import InvalidName, TokenNotFound, UserExists, UserNotFound
from quantfleet.users.models import TOKEN_PREFIX, TokenInfo, User

if TYPE_CHECKING:
    from quantfleet.core.settings import Settings

__all__ = ["UNCHANGED", "UserService", "check_name"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Record a token's use at most this often: authentication stays a read, not a write per request.
_LAST_USED_EVERY = timedelta(minutes=5)
_TOKEN_BYTES = 32
_PREFIX_CHARS = 8  # "qf_" and 5 characters of the secret: enough to recognize a token, useless to guess it


class _Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


UNCHANGED: Literal[_Unchanged.UNCHANGED] = _Unchanged.UNCHANGED
"""The default of :meth:`UserService.set_quota`'s limits: leave this limit as it is (None removes it)."""

Quota = int | None | Literal[_Unchanged.UNCHANGED]


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid user name; raise :class:`InvalidName` saying the rule otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidName(
            f"user name {name!r} is not valid: use 1 to 64 ASCII letters, digits, '-', '_' or '.' "
            "(no spaces or '@'), e.g. 'ana' or 'ana.lee'"
        )
    return name


def _check_limit(value: int | None, option: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{option} {value!r}: give a whole number, 0 or more, or none for no limit")
    return value


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _user(row: Mapping[Any, Any]) -> User:
    return User(
        name=row["name"],
        admin=bool(row["admin"]),
        max_running=row["max_running"],
        max_queued=row["max_queued"],
        created_at=row["created_at"],
    )


def _token(row: Mapping[Any, Any]) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        user=row["user_name"],
        prefix=row["prefix"],
        label=row["label"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def _not_found(name: str) -> UserNotFound:
    return UserNotFound(
        f"no user {name!r}; add one with 'quantfleet users add {name}' (list them with 'quantfleet users ls')"
    )


class UserService:
    """Users, API tokens and per-user quotas, in the job database ``db`` (already upgraded)."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        """Use ``db``; ``clock`` defaults to the system clock."""
        self.db = db
        self.clock: Clock = clock if clock is not None else SystemClock()

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> UserService:
        """Open the database the settings name, upgrading the schema first."""
        db = Database(settings.resolved_database_url)
        db.upgrade()
        return cls(db, clock=clock)

    # -- users ------------------------------------------------------------------------------

    def add_user(
        self, name: str, *, admin: bool = False, max_running: int | None = None, max_queued: int | None = None
    ) -> User:
        """Add a user (quotas None: no limit); :class:`UserExists` if the name is taken."""
        user = User(
            name=check_name(name),
            admin=bool(admin),
            max_running=_check_limit(max_running, "max_running"),
            max_queued=_check_limit(max_queued, "max_queued"),
            created_at=self.clock.now(),
        )
        exists = UserExists(f"user {name!r} already exists; change its limits with 'quantfleet users quota {name}'")
        try:
            with self.db.write() as conn:
                if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None:
                    raise exists
                conn.execute(sa.insert(users).values(**dataclasses.asdict(user)))
        except sa_exc.IntegrityError:  # added concurrently (PostgreSQL)
            raise exists from None
        return user

    def _get(self, conn: Connection, name: str) -> User:
        row = conn.execute(sa.select(users).where(users.c.name == name)).mappings().first()
        if row is None:
            raise _not_found(name)
        return _user(row)

    def get_user(self, name: str) -> User:
        """Return the user named ``name``; :class:`UserNotFound` if there is none."""
        check_name(name)
        with self.db.read() as conn:
            return self._get(conn, name)

    def list_users(self) -> list[User]:
        """Return every user, by name."""
        with self.db.read() as conn:
            return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.name)).mappings().all()]

    def set_quota(self, name: str, *, max_running: Quota = UNCHANGED, max_queued: Quota = UNCHANGED) -> User:
        """Change a user's limits: a number sets one, None removes it, :data:`UNCHANGED` (default) keeps it.

        A lower limit never stops running jobs or drops queued ones: it holds
        back the next claims (running) and refuses the next submissions (queued).
        """
        values: dict[str, int | None] = {}
        if max_running is not UNCHANGED:
            values["max_running"] = _check_limit(max_running, "max_running")
        if max_queued is not UNCHANGED:
            values["max_queued"] = _check_limit(max_queued, "max_queued")
        check_name(name)
        with self.db.write() as conn:
            self._get(conn, name)
            if values:
                conn.execute(sa.update(users).where(users.c.name == name).values(**values))
            return self._get(conn, name)

    # -- tokens -----------------------------------------------------------------------------

    def create_token(self, name: str, *, label: str = "") -> tuple[str, TokenInfo]:
        """Create an API token for user ``name``; return the secret (shown this once, never stored) and its info."""
        check_name(name)
        if len(label) > 200:
            raise UserError(f"token label of {len(label)} characters: give 200 or fewer")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        info = TokenInfo(
            id=secrets.token_hex(6),
            user=name,
            prefix=secret[:_PREFIX_CHARS],
            label=label,
            created_at=self.clock.now(),
            last_used_at=None,
            revoked_at=None,
        )
        with self.db.write() as conn:
            self._get(conn, name)
            conn.execute(
                sa.insert(api_tokens).values(
                    id=info.id,
                    user_name=name,
                    token_hash=_hash(secret),
                    prefix=info.prefix,
                    label=label,
                    created_at=info.created_at,
                    last_used_at=None,
                    revoked_at=None,
                )
            )
        return secret, info

    def list_tokens(self, name: str | None = None) -> list[TokenInfo]:
        """Return the tokens of user ``name`` (default: of every user), revoked ones included, oldest first."""
        query = sa.select(api_tokens).order_by(api_tokens.c.user_name, api_tokens.c.created_at, api_tokens.c.id)
        with self.db.read() as conn:
            if name is not None:
                check_name(name)
                self._get(conn, name)
                query = query.where(api_tokens.c.user_name == name)
            return [_token(r) for r in conn.execute(query).mappings().all()]

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token by its public id (it stops authenticating at once); revoking twice is harmless."""
        with self.db.write() as conn:
            row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).mappings().first()
            if row is None:
                raise TokenNotFound(f"no API token with id {token_id!r}; list them with 'quantfleet token ls'")
            if row["revoked_at"] is None:
                conn.execute(
                    sa.update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=self.clock.now())
                )
            row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).mappings().one()
        return _token(row)

    def authenticate(self, token: str) -> User | None:
        """Return the user a presented token belongs to; None if it is unknown, revoked or malformed.

        One read by the token's hash; the token's ``last_used_at`` is written
        at most once every 5 minutes, and a failure to write it is ignored.
        """
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        query = (
            sa.select(users, api_tokens.c.id.label("token_id"), api_tokens.c.last_used_at)
            .select_from(api_tokens.join(users, users.c.name == api_tokens.c.user_name))
            .where(api_tokens.c.token_hash == _hash(token), api_tokens.c.revoked_at.is_(None))
        )
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        now = self.clock.now()
        if row["last_used_at"] is None or now - row["last_used_at"] >= _LAST_USED_EVERY:
            self._touch(row["token_id"], now)
        return _user(row)

    def _touch(self, token_id: str, now: datetime) -> None:
        stale = sa.or_(api_tokens.c.last_used_at.is_(None), api_tokens.c.last_used_at <= now - _LAST_USED_EVERY)
        try:
            with self.db.write() as conn:
                conn.execute(sa.update(api_tokens).where(api_tokens.c.id == token_id, stale).values(last_used_at=now))
        except DatabaseUnavailable:
            log.warning("could not record the use of API token %s (the database is busy); ignored", token_id)
