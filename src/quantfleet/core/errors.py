"""The one exception tree of quantfleet.

Every error quantfleet raises on purpose derives from :class:`QuantfleetError`
and is either a :class:`UserError` (the input is wrong; retrying will not help)
or an :class:`InfrastructureError` (a server, disk or network failed; a retry
may succeed). Job retries, HTTP statuses and CLI exit codes depend on which.

A message names the problem and the fix, e.g.
``snapshot 12 does not exist; list them with 'quantfleet data snapshots'``.
"""

from __future__ import annotations

__all__ = [
    "CalendarError",
    "ConfigError",
    "DataError",
    "InfrastructureError",
    "InvalidBarsError",
    "NoDataError",
    "OverlappingBarsError",
    "QuantfleetError",
    "SnapshotNotFound",
    "StorageUnavailable",
    "UnknownSymbolError",
    "UserError",
    "VendorError",
]


class QuantfleetError(Exception):
    """Root of every error quantfleet raises on purpose."""


class UserError(QuantfleetError):
    """The request or its input is wrong; the message says how to fix it."""


class InfrastructureError(QuantfleetError):
    """Something outside the user's input failed; retrying may help."""


class ConfigError(UserError):
    """A setting or option has a value quantfleet cannot use."""


class DataError(UserError):
    """Market data asked for or offered is wrong or missing."""


class InvalidBarsError(DataError):
    """Bars offered for ingest break a rule (prices, OHLC relations, duplicates, sessions)."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class OverlappingBarsError(DataError):
    """Bars offered for append overlap bars the table already holds."""


class SnapshotNotFound(DataError):
    """A snapshot id or tag does not exist."""


class NoDataError(DataError):
    """A read matched no bars."""


class UnknownSymbolError(DataError):
    """A symbol is not in the snapshot."""


class CalendarError(DataError):
    """An exchange calendar name or date range is not usable."""


class StorageUnavailable(InfrastructureError):
    """The object store (local folder or S3 endpoint) cannot be reached or written."""


class VendorError(InfrastructureError):
    """A market-data vendor answered with an error or could not be reached."""
