"""Users: names, quotas, and the users table; errors name the fix."""

from __future__ import annotations

import dataclasses
import re

import pytest

from quantfleet.core.errors import UserError
from quantfleet.testing import FrozenClock
from quantfleet.users import UNCHANGED, InvalidName, User, UserExists, UserNotFound, UserService, check_name


def test_add_get_and_list_users(users: UserService, clock: FrozenClock) -> None:
    ana = users.add_user("ana", admin=True, max_running=2, max_queued=100)
    assert ana == User(name="ana", admin=True, max_running=2, max_queued=100, created_at=clock.now())
    bob = users.add_user("bob.lee")
    assert (bob.admin, bob.max_running, bob.max_queued) == (False, None, None)
    assert users.get_user("ana") == ana
    assert [u.name for u in users.list_users()] == ["ana", "bob.lee"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ana.admin = False  # type: ignore[misc]


def test_a_taken_name_and_an_unknown_user_name_the_fix(users: UserService) -> None:
    users.add_user("ana")
    with pytest.raises(UserExists, match="quantfleet users quota ana"):
        users.add_user("ana", admin=True)
    with pytest.raises(UserNotFound, match="quantfleet users add zoe"):
        users.get_user("zoe")
    with pytest.raises(UserNotFound, match="quantfleet users add zoe"):
        users.set_quota("zoe", max_running=1)


@pytest.mark.parametrize("name", ["ana", "a", "Ana_Lee-2.x", "0" * 64, "..."])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "ana lee", "ana@example.com", "a" * 65, "zoë", "a/b", "ana\n"])
def test_invalid_names_say_the_rule(users: UserService, name: str) -> None:
    with pytest.raises(InvalidName, match=re.escape("1 to 64 ASCII letters, digits, '-', '_' or '.'")):
        users.add_user(name)
    assert issubclass(InvalidName, UserError)


def test_set_quota_changes_keeps_or_removes_each_limit(users: UserService) -> None:
    users.add_user("ana", max_running=2, max_queued=10)
    assert users.set_quota("ana", max_running=5).max_queued == 10  # the other limit is unchanged
    changed = users.set_quota("ana", max_queued=None)
    assert (changed.max_running, changed.max_queued) == (5, None)
    same = users.set_quota("ana", max_running=UNCHANGED, max_queued=UNCHANGED)
    assert same == changed
    assert users.get_user("ana") == changed


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_bad_limits_are_refused(users: UserService, bad: object) -> None:
    with pytest.raises(UserError, match="0 or more, or none for no limit"):
        users.add_user("ana", max_running=bad)  # type: ignore[arg-type]
    users.add_user("bob")
    with pytest.raises(UserError, match="max_queued"):
        users.set_quota("bob", max_queued=bad)  # type: ignore[arg-type]
