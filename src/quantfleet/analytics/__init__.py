"""Analytics: performance metrics (pure functions) and reports. Imports only core."""

from quantfleet.analytics.metrics import PERFORMANCE_KEYS, Performance, performance, periods_per_year, summary

__all__ = ["PERFORMANCE_KEYS", "Performance", "performance", "periods_per_year", "summary"]
