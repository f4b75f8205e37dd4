"""Errors of the user service. Each names the problem and the fix."""

from __future__ import annotations

from quantfleet.core.errors import UserError

__all__ = ["InvalidName", "TokenNotFound", "UserExists", "UserNotFound"]


class InvalidName(UserError):
    """A user name breaks the naming rule (1 to 64 ASCII letters, digits, '-', '_' or '.')."""


class UserNotFound(UserError):
    """No user has this name."""


class UserExists(UserError):
    """A user with this name already exists."""


class TokenNotFound(UserError):
    """No API token has this id."""
