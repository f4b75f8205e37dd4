"""Load a strategy file and recognise its style: a Strategy class, ``run(ctx)`` or ``signals(...)``."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from quantfleet.core.errors import UserError
from quantfleet.core.orders import Fill
from quantfleet.strategy.base import Strategy
from quantfleet.strategy.context import Bars, Context
from quantfleet.strategy.params import ParamSpec, params_of_function, resolve_params
from quantfleet.strategy.signals import as_positions

__all__ = [
    "FIELDS",
    "LoadedStrategy",
    "StrategyError",
    "StrategyKind",
    "is_cross_sectional",
    "load_strategy",
    "user_traceback",
]

FIELDS = ("open", "high", "low", "close", "volume")


class StrategyKind(StrEnum):
    """The three styles of strategy file."""

    CLASS = "class"
    RUN = "run"
    SIGNALS = "signals"


class StrategyError(UserError):
    """The strategy file failed to load or raised while running; the message shows the user's traceback."""


def user_traceback(exc: BaseException, path: Path) -> str:
    """Return the traceback of ``exc`` with the frames of the user's file first and quantfleet's dropped."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
    shown = traceback.format_list(mine or frames[-3:])
    body = "".join(shown)
    return f"Traceback (your code):\n{body}{type(exc).__name__}: {exc}"


def _summary(exc: BaseException, path: Path, where: str) -> str:
    tb: TracebackType | None = exc.__traceback__
    line = None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = (tb.tb_lineno, tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    at = f"{path.name}:{line[0]} in {line[1]}" if line else path.name
    return f"{type(exc).__name__}: {exc} (raised at {at}{where})"


def strategy_error(exc: BaseException, path: Path, where: str = "") -> StrategyError:
    """Wrap an exception raised by user code with a summary and the user's traceback."""
    err = StrategyError(f"your strategy failed: {_summary(exc, path, where)}\n\n{user_traceback(exc, path)}")
    err.__cause__ = exc
    return err


class _RunStrategy:
    """Adapt a ``run(ctx)`` function (and optional ``initialize(ctx)``) to the engine's calls."""

    def __init__(self, run: Callable[..., Any], init: Callable[..., Any] | None, params: dict[str, Any]) -> None:
        self._run, self._init, self.params = run, init, params

    def initialize(self, ctx: Context) -> None:
        if self._init is not None:
            self._init(ctx)

    def on_bar(self, ctx: Context, bars: Bars) -> None:
        self._run(ctx, **self.params)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        pass

    def on_end(self, ctx: Context) -> None:
        pass


def is_cross_sectional(func: Callable[..., Any]) -> bool:
    """Return whether a ``signals`` function sees all symbols at once (``signals.cross_sectional = True``)."""
    return getattr(func, "cross_sectional", False) is True


class _SignalsStrategy:
    """Run a vectorized ``signals(close, ...)`` function through the event engine.

    Per symbol (the default), the function gets whole arrays of the fields it
    names and returns a target position per bar (True/1 long, 0 flat, -1
    short). Each symbol gets an equal share of equity; a change of target at
    bar ``i`` trades at the next fill.

    Cross-sectional (``signals.cross_sectional = True``), it gets (bars,
    symbols) arrays and returns target weights (share of equity) per bar and
    symbol; each finite weight is an ``order_target_percent`` on that bar (NaN:
    no order), those with weight 0 placed first so their sales free cash for
    the buys. Here it is recomputed on bar ``i`` from the history up to ``i``
    (look-ahead is impossible, and the cost grows with the square of the bars:
    the vectorized engine computes it once).
    """

    def __init__(self, func: Callable[..., Any], params: dict[str, Any]) -> None:
        self._func, self.params = func, params
        names = list(inspect.signature(func).parameters)
        self._inputs = [n for n in names if n in FIELDS]
        self._lines: dict[str, Any] = {}
        self._held: dict[str, float] = {}
        self._panel = is_cross_sectional(func)

    def _compute(self, *arrays: np.ndarray) -> np.ndarray:
        return as_positions(self._func(*arrays, **self.params))

    def initialize(self, ctx: Context) -> None:
        if self._panel:
            return
        for symbol in ctx.universe:
            self._lines[symbol] = ctx.indicator(self._compute, self._inputs, symbol=symbol)
            self._held[symbol] = 0.0

    def on_bar(self, ctx: Context, bars: Bars) -> None:
        if self._panel:
            self._rebalance(ctx)
            return
        weight = 1.0 / len(ctx.universe)
        for symbol in bars.symbols:
            want = self._lines[symbol][-1]
            if want != self._held[symbol]:
                self._held[symbol] = want
                ctx.order_target_percent(symbol, want * weight)

    def _rebalance(self, ctx: Context) -> None:
        universe = ctx.universe
        k = ctx.bar_index + 1
        arrays = {f: np.column_stack([ctx.history(s, f, k) for s in universe]) for f in self._inputs}
        out = np.asarray(self._func(**arrays, **self.params), dtype=np.float64)
        if out.shape != (k, len(universe)):
            raise UserError(
                f"signals() returned shape {out.shape}; a cross-sectional signals() must return one weight "
                f"per bar and symbol ({k}, {len(universe)})"
            )
        row = out[-1].tolist()
        for zero in (True, False):
            for symbol, weight in zip(universe, row, strict=True):
                if weight == weight and (weight == 0.0) == zero:
                    ctx.order_target_percent(symbol, weight)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        pass

    def on_end(self, ctx: Context) -> None:
        pass


@dataclass(frozen=True)
class LoadedStrategy:
    """A strategy file, loaded: its style, parameters and content hash."""

    path: Path
    kind: StrategyKind
    sha256: str
    name: str
    parameters: dict[str, ParamSpec]
    target: Any
    module: ModuleType = field(repr=False)

    def instantiate(self, overrides: Mapping[str, Any] | None = None) -> Any:
        """Return an object with initialize/on_bar/on_fill/on_end, parameters applied."""
        values = resolve_params(self.parameters, overrides or {})
        if self.kind is StrategyKind.CLASS:
            return self.target(**values)
        if self.kind is StrategyKind.RUN:
            return _RunStrategy(self.target, getattr(self.module, "initialize", None), values)
        return _SignalsStrategy(self.target, values)


def load_strategy(path: Path | str, *, class_name: str | None = None) -> LoadedStrategy:
    """Load the strategy in ``path``; raise :class:`StrategyError` with the user's traceback on failure."""
    path = Path(path)
    if not path.is_file():
        raise StrategyError(f"{path}: no such strategy file; pass the path of a .py file")
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    module_name = f"quantfleet_strategy_{digest[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StrategyError(f"{path}: cannot be loaded as Python; name it *.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise strategy_error(exc, path, " while loading the file") from exc
    classes = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module_name
    }
    if class_name is not None:
        if class_name not in classes:
            raise StrategyError(
                f"{path}: no Strategy subclass named {class_name}; found {', '.join(classes) or 'none'}"
            )
        classes = {class_name: classes[class_name]}
    if len(classes) > 1:
        raise StrategyError(
            f"{path} defines {len(classes)} strategies ({', '.join(classes)}); choose one with --class NAME"
        )
    if classes:
        name, cls = next(iter(classes.items()))
        return LoadedStrategy(path, StrategyKind.CLASS, digest, name, cls.parameters(), cls, module)
    run = getattr(module, "run", None)
    if callable(run):
        return LoadedStrategy(path, StrategyKind.RUN, digest, path.stem, params_of_function(run, skip=1), run, module)
    signals = getattr(module, "signals", None)
    if callable(signals):
        inputs = [n for n in inspect.signature(signals).parameters if n in FIELDS]
        if not inputs:
            raise StrategyError(f"{path}: signals() must take at least one of {', '.join(FIELDS)} as an argument")
        params = {k: v for k, v in params_of_function(signals, skip=0).items() if k not in FIELDS}
        return LoadedStrategy(path, StrategyKind.SIGNALS, digest, path.stem, params, signals, module)
    raise StrategyError(
        f"{path}: no strategy found. Define one of: a class deriving from quantfleet.Strategy with "
        "on_bar(self, ctx, bars); a function run(ctx); or a vectorized function signals(close, ...)"
    )
