"""What every CLI command shares: settings read once, the store they point at."""

from __future__ import annotations

from dataclasses import dataclass

from quantfleet.core.settings import Settings, load_settings
from quantfleet.data import MarketDataStore

__all__ = ["state"]


@dataclass
class _State:
    settings: Settings | None = None
    _store: MarketDataStore | None = None

    def store(self) -> MarketDataStore:
        """Return the market-data store of the current settings."""
        if self._store is None:
            self._store = MarketDataStore.from_settings(self.settings or load_settings())
        return self._store


state = _State()
