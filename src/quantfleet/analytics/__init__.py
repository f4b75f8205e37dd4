"""Analytics: performance metrics (pure functions) and reports. Imports only core."""

from quantfleet.analytics.metrics import summary

__all__ = ["summary"]
