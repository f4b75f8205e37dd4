"""Engine settings and the pluggable cost models, each documented where it changes results.

Fill timing: a market order submitted on bar ``i`` fills at bar ``i + 1``'s
open (``fill_at="next_open"``, the default). ``fill_at="close"`` fills it at
bar ``i``'s close instead, which is optimistic (the strategy saw that close
before deciding) and warns. Limit and stop orders fill by the bar's range;
an order the open gaps through fills at the open.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat

from quantfleet.core.types import Adjustment

__all__ = [
    "BpsCommission",
    "Commission",
    "EngineConfig",
    "FixedBpsSlippage",
    "NoCommission",
    "NoSlippage",
    "PerShareCommission",
    "Slippage",
    "VolumeShareSlippage",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class NoCommission(BaseModel):
    """No commission."""

    model_config = _FROZEN
    kind: Literal["none"] = "none"

    def cost(self, quantity: float, price: float) -> float:
        """Return the commission of a fill."""
        return 0.0


class PerShareCommission(BaseModel):
    """``rate`` per unit traded, at least ``minimum`` per fill (e.g. 0.005 USD/share, min 1 USD)."""

    model_config = _FROZEN
    kind: Literal["per_share"] = "per_share"
    rate: NonNegativeFloat = 0.005
    minimum: NonNegativeFloat = 1.0

    def cost(self, quantity: float, price: float) -> float:
        """Return the commission of a fill."""
        return max(abs(quantity) * self.rate, self.minimum) if quantity else 0.0


class BpsCommission(BaseModel):
    """``bps`` basis points of the traded value."""

    model_config = _FROZEN
    kind: Literal["bps"] = "bps"
    bps: NonNegativeFloat = 1.0

    def cost(self, quantity: float, price: float) -> float:
        """Return the commission of a fill."""
        return abs(quantity * price) * self.bps / 10_000


class NoSlippage(BaseModel):
    """Fill at the model price."""

    model_config = _FROZEN
    kind: Literal["none"] = "none"

    def price(self, price: float, quantity: float, volume: float) -> float:
        """Return the fill price after slippage (worse for the trader)."""
        return price


class FixedBpsSlippage(BaseModel):
    """Move every fill ``bps`` basis points against the trader."""

    model_config = _FROZEN
    kind: Literal["bps"] = "bps"
    bps: NonNegativeFloat = 5.0

    def price(self, price: float, quantity: float, volume: float) -> float:
        """Return the fill price after slippage (worse for the trader)."""
        return price * (1 + self.bps / 10_000) if quantity > 0 else price * (1 - self.bps / 10_000)


class VolumeShareSlippage(BaseModel):
    """Impact grows with the square of the bar-volume share taken: ``impact * (qty / volume)^2``."""

    model_config = _FROZEN
    kind: Literal["volume_share"] = "volume_share"
    impact: NonNegativeFloat = 0.1

    def price(self, price: float, quantity: float, volume: float) -> float:
        """Return the fill price after slippage (worse for the trader)."""
        share = min(1.0, abs(quantity) / volume) if volume > 0 else 1.0
        move = self.impact * share * share
        return price * (1 + move) if quantity > 0 else price * (1 - move)


Commission = Annotated[NoCommission | PerShareCommission | BpsCommission, Field(discriminator="kind")]
Slippage = Annotated[NoSlippage | FixedBpsSlippage | VolumeShareSlippage, Field(discriminator="kind")]


class EngineConfig(BaseModel):
    """How the simulator fills orders and keeps the books. Frozen; unknown fields are errors."""

    model_config = _FROZEN

    cash: PositiveFloat = 100_000.0
    fill_at: Literal["next_open", "close"] = "next_open"
    commission: Commission = Field(default_factory=NoCommission)
    slippage: Slippage = Field(default_factory=NoSlippage)
    volume_limit: float | None = Field(
        default=None, gt=0, le=1, description="Largest share of a bar's volume one order may take; the rest waits."
    )
    allow_short: bool = True
    max_leverage: PositiveFloat = Field(
        default=1.0,
        description="Gross exposure may not pass this multiple of equity; buys may borrow beyond cash "
        "only when it is above 1.",
    )
    fractional: bool = Field(default=False, description="Trade fractional units; otherwise whole units.")
    adjustment: Adjustment = Field(
        default=Adjustment.RAW,
        description="Prices the engine trades on. raw: splits and dividends are applied to the books as events; "
        "splits: dividends are credited as cash; all: both are already in the prices.",
    )
    seed: int = 0
    warmup: int = Field(default=0, ge=0, description="Bars before the start that indicators see but trading does not.")
