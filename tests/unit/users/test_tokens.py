"""API tokens: shown once, stored as a sha256 hash only, revocable; authenticate() answers a User or None."""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa

from quantfleet.store import Database
from quantfleet.store.models import api_tokens
from quantfleet.testing import FrozenClock
from quantfleet.users import TokenNotFound, UserNotFound, UserService


def test_a_token_is_shown_once_and_only_its_hash_is_stored(users: UserService, db: Database) -> None:
    users.add_user("ana")
    secret, info = users.create_token("ana", label="laptop")
    assert re.fullmatch(r"qf_[A-Za-z0-9_\-]{43}", secret)  # 32 random bytes, URL-safe base64
    assert (info.user, info.label, info.active) == ("ana", "laptop", True)
    assert secret.startswith(info.prefix)
    assert len(info.prefix) == 8
    assert re.fullmatch(r"[0-9a-f]{12}", info.id)
    with db.read() as conn:
        row = conn.execute(sa.select(api_tokens)).mappings().one()
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(value) for value in row.values())
    other, _ = users.create_token("ana")
    assert other != secret


def test_authenticate_finds_the_user_and_refuses_the_rest(users: UserService) -> None:
    users.add_user("ana", admin=True, max_running=3)
    users.add_user("bob")
    secret, _ = users.create_token("ana")
    bob_secret, _ = users.create_token("bob")
    user = users.authenticate(secret)
    assert user is not None
    assert (user.name, user.admin, user.max_running) == ("ana", True, 3)
    assert users.authenticate(bob_secret) == users.get_user("bob")
    for wrong in ("", "qf_", secret[:-1], secret + "x", "Bearer " + secret, "x" * 500, "qf_" + "A" * 43):
        assert users.authenticate(wrong) is None


def test_a_revoked_token_stops_authenticating_at_once(users: UserService, clock: FrozenClock) -> None:
    users.add_user("ana")
    secret, info = users.create_token("ana")
    keep, _ = users.create_token("ana")
    revoked = users.revoke_token(info.id)
    assert (revoked.active, revoked.revoked_at) == (False, clock.now())
    assert users.authenticate(secret) is None
    assert users.authenticate(keep) is not None
    clock.advance(60)
    assert users.revoke_token(info.id).revoked_at == revoked.revoked_at  # revoking twice changes nothing
    with pytest.raises(TokenNotFound, match="quantfleet token ls"):
        users.revoke_token("nope")


def test_last_used_is_written_at_most_every_five_minutes(users: UserService, clock: FrozenClock) -> None:
    users.add_user("ana")
    secret, info = users.create_token("ana")
    assert users.list_tokens("ana")[0].last_used_at is None
    first = clock.now()
    users.authenticate(secret)
    clock.advance(120)
    users.authenticate(secret)
    assert users.list_tokens("ana")[0].last_used_at == first
    clock.advance(180)
    users.authenticate(secret)
    assert users.list_tokens("ana")[0].last_used_at == clock.now()
    assert info.last_used_at is None


def test_list_tokens_per_user_or_all(users: UserService, clock: FrozenClock) -> None:
    users.add_user("ana")
    users.add_user("bob")
    users.create_token("bob", label="ci")
    users.create_token("ana", label="one")
    clock.advance(1)
    users.create_token("ana", label="two")
    assert [t.label for t in users.list_tokens("ana")] == ["one", "two"]
    assert [t.user for t in users.list_tokens()] == ["ana", "ana", "bob"]
    with pytest.raises(UserNotFound):
        users.list_tokens("zoe")
    with pytest.raises(UserNotFound, match="quantfleet users add zoe"):
        users.create_token("zoe")
