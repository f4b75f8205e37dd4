"""Users, their API tokens and their job quotas, over the job database.

A user's name is the ``owner`` of its jobs. Tokens are shown once at
creation and stored only as a sha256 hash; :meth:`UserService.authenticate`
turns a presented token into a :class:`User` (or None).
"""

from quantfleet.users.errors import InvalidName, TokenNotFound, UserExists, UserNotFound
from quantfleet.users.models import TOKEN_PREFIX, TokenInfo, User
from quantfleet.users.service import UNCHANGED, UserService, check_name

__all__ = [
    "TOKEN_PREFIX",
    "UNCHANGED",
    "InvalidName",
    "TokenInfo",
    "TokenNotFound",
    "User",
    "UserExists",
    "UserNotFound",
    "UserService",
    "check_name",
]
