"""Market data: versioned Delta Lake snapshots of bars, corporate actions and instruments.

The research core reads bars through :class:`MarketDataStore`; ingest
adapters live in :mod:`quantfleet.data.ingest`.
"""

from quantfleet.data.cache import FileCache
from quantfleet.data.reader import BarData
from quantfleet.data.storage import StorageOptions
from quantfleet.data.store import IngestResult, MarketDataStore, SnapshotInfo, SymbolSummary
from quantfleet.data.validate import OffSession

__all__ = [
    "BarData",
    "FileCache",
    "IngestResult",
    "MarketDataStore",
    "OffSession",
    "SnapshotInfo",
    "StorageOptions",
    "SymbolSummary",
]
