"""quantfleet: backtest Python trading strategies on versioned market data, at scale, then trade them."""

from quantfleet.core.errors import InfrastructureError, QuantfleetError, UserError
from quantfleet.core.types import Adjustment, Frequency
from quantfleet.strategy import Strategy

__version__ = "0.1.0"

__all__ = [
    "Adjustment",
    "Frequency",
    "InfrastructureError",
    "QuantfleetError",
    "Strategy",
    "UserError",
    "__version__",
]
