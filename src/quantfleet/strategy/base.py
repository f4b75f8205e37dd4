"""The class style: subclass :class:`Strategy`, declare parameters, implement ``on_bar``."""

from __future__ import annotations

from typing import Any, ClassVar

from quantfleet.core.orders import Fill
from quantfleet.strategy.context import Bars, Context
from quantfleet.strategy.params import ParamSpec, params_of_class, resolve_params

__all__ = ["Strategy"]


class Strategy:
    """Base class of class-style strategies.

    Declare parameters as annotated class attributes (``fast: int = 10``);
    choose data and indicators in :meth:`initialize`; trade in :meth:`on_bar`.
    """

    _param_specs: ClassVar[dict[str, ParamSpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._param_specs = params_of_class(cls)

    def __init__(self, **params: Any) -> None:
        for name, value in resolve_params(self._param_specs, params).items():
            setattr(self, name, value)

    @classmethod
    def parameters(cls) -> dict[str, ParamSpec]:
        """Return the declared parameters."""
        return dict(cls._param_specs)

    @property
    def params(self) -> dict[str, Any]:
        """Return this instance's parameter values."""
        return {name: getattr(self, name) for name in self._param_specs}

    def initialize(self, ctx: Context) -> None:
        """Choose data channels and indicators; called once before the first bar."""

    def on_bar(self, ctx: Context, bars: Bars) -> None:
        """Trade on a new batch of bars (one timestamp, every subscribed symbol)."""
        raise NotImplementedError(f"{type(self).__name__} must define on_bar(self, ctx, bars)")

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """React to an execution (optional)."""

    def on_end(self, ctx: Context) -> None:
        """Clean up after the last bar (optional)."""
