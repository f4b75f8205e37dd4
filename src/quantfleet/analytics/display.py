"""How each metric is shown: its label, its format, and which direction is better.

Reports display the flat metrics mapping that :mod:`quantfleet.analytics.metrics`
produces; this module only formats it. A key missing from a run shows as
"n/a"; a key this table does not know is shown after the known ones, in a
generic number format. "Better" drives the highlight on the compare page:
``"higher"``, ``"lower"``, ``"zero"`` (closer to zero is better, whatever the
sign convention: drawdowns, losses, costs) or None (neither: beta, trade count).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "METRICS",
    "SECTIONS",
    "MetricSpec",
    "best_indices",
    "format_value",
    "metric_rows",
    "section_order",
    "spec_for",
]

Format = Literal["pct", "ratio", "money", "days", "date", "int", "num"]
Better = Literal["higher", "lower", "zero"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """How to display one metric key."""

    key: str
    label: str
    fmt: Format
    better: Better | None
    section: str
    benchmark: bool = False  # a returns-based metric the benchmark has too


SECTIONS = ("Returns", "Risk", "Drawdowns", "Distribution", "Against the benchmark", "Trading", "Costs", "Other")


def _specs() -> tuple[MetricSpec, ...]:
    rows: list[tuple[str, str, Format, Better | None, str, bool]] = [
        ("total_return", "Total return", "pct", "higher", "Returns", True),
        ("cagr", "CAGR", "pct", "higher", "Returns", True),
        ("final_equity", "Final equity", "money", "higher", "Returns", False),
        ("best_day", "Best day", "pct", "higher", "Returns", True),
        ("worst_day", "Worst day", "pct", "higher", "Returns", True),
        ("best_month", "Best month", "pct", "higher", "Returns", True),
        ("worst_month", "Worst month", "pct", "higher", "Returns", True),
        ("best_year", "Best year", "pct", "higher", "Returns", True),
        ("worst_year", "Worst year", "pct", "higher", "Returns", True),
        ("positive_periods", "Positive periods", "pct", "higher", "Returns", True),
        ("annual_volatility", "Annual volatility", "pct", "lower", "Risk", True),
        ("sharpe", "Sharpe ratio", "ratio", "higher", "Risk", True),
        ("sortino", "Sortino ratio", "ratio", "higher", "Risk", True),
        ("calmar", "Calmar ratio", "ratio", "higher", "Risk", True),
        ("omega", "Omega ratio", "ratio", "higher", "Risk", True),
        ("var_95", "Value at risk (95%)", "pct", "zero", "Risk", True),
        ("cvar_95", "Expected shortfall (95%)", "pct", "zero", "Risk", True),
        ("max_drawdown", "Max drawdown", "pct", "zero", "Drawdowns", True),
        ("max_drawdown_peak", "Max drawdown peak", "date", None, "Drawdowns", True),
        ("max_drawdown_trough", "Max drawdown trough", "date", None, "Drawdowns", True),
        ("max_drawdown_recovery", "Max drawdown recovery", "date", None, "Drawdowns", True),
        ("max_drawdown_days", "Max drawdown length", "days", "lower", "Drawdowns", True),
        ("avg_drawdown", "Average drawdown", "pct", "zero", "Drawdowns", True),
        ("avg_drawdown_days", "Average drawdown length", "days", "lower", "Drawdowns", True),
        ("longest_drawdown_days", "Longest drawdown", "days", "lower", "Drawdowns", True),
        ("skew", "Skew", "ratio", "higher", "Distribution", True),
        ("kurtosis", "Kurtosis", "ratio", None, "Distribution", True),
        ("tail_ratio", "Tail ratio", "ratio", "higher", "Distribution", True),
        ("alpha", "Alpha (annual)", "pct", "higher", "Against the benchmark", False),
        ("beta", "Beta", "ratio", None, "Against the benchmark", False),
        ("correlation", "Correlation", "ratio", None, "Against the benchmark", False),
        ("information_ratio", "Information ratio", "ratio", "higher", "Against the benchmark", False),
        ("tracking_error", "Tracking error", "pct", None, "Against the benchmark", False),
        ("up_capture", "Up capture", "ratio", "higher", "Against the benchmark", False),
        ("down_capture", "Down capture", "ratio", "lower", "Against the benchmark", False),
        ("trades", "Round trips", "int", None, "Trading", False),
        ("win_rate", "Win rate", "pct", "higher", "Trading", False),
        ("avg_win", "Average win", "money", "higher", "Trading", False),
        ("avg_loss", "Average loss", "money", "zero", "Trading", False),
        ("profit_factor", "Profit factor", "ratio", "higher", "Trading", False),
        ("expectancy", "Expectancy per trade", "money", "higher", "Trading", False),
        ("avg_holding_days", "Average holding", "days", None, "Trading", False),
        ("exposure", "Time in market", "pct", None, "Trading", False),
        ("turnover", "Turnover (annual)", "ratio", None, "Trading", False),
        ("commission", "Commission", "money", "zero", "Costs", False),
        ("slippage", "Slippage", "money", "zero", "Costs", False),
    ]
    return tuple(MetricSpec(k, label, fmt, better, section, bench) for k, label, fmt, better, section, bench in rows)


METRICS: Mapping[str, MetricSpec] = {s.key: s for s in _specs()}


def spec_for(key: str) -> MetricSpec:
    """Return the display spec of ``key``; an unknown key gets a generic one in "Other"."""
    known = METRICS.get(key)
    if known is not None:
        return known
    return MetricSpec(key, key.replace("_", " ").capitalize(), "num", None, "Other")


def metric_rows(*mappings: Mapping[str, Any] | None) -> list[MetricSpec]:
    """Return the specs to show: every known key, then unknown keys of ``mappings`` in sorted order."""
    extra: set[str] = set()
    for m in mappings:
        if m:
            extra.update(k for k in m if k not in METRICS)
    return [*METRICS.values(), *(spec_for(k) for k in sorted(extra))]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _format_date(value: Any) -> str:
    text = str(value)
    # ISO strings: drop a midnight time and a UTC offset so daily runs read as dates.
    for suffix in ("+00:00", "Z"):
        text = text.removesuffix(suffix)
    text = text.replace("T", " ")
    for midnight in (" 00:00:00.000000", " 00:00:00", " 00:00"):
        text = text.removesuffix(midnight)
    return text


def format_value(value: Any, fmt: Format) -> str:
    """Return ``value`` as display text; None, NaN and missing values are "n/a"."""
    if value is None:
        return "n/a"
    if fmt == "date":
        return _format_date(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    number = _number(value)
    if number is None:
        return "n/a" if isinstance(value, float) else str(value)
    if fmt == "pct":
        return f"{number:.2%}"
    if fmt == "ratio":
        return f"{number:.2f}"
    if fmt == "money":
        return f"{number:,.2f}"
    if fmt == "int":
        return f"{round(number):,}"
    if fmt == "days":
        return f"{number:,.1f} d" if abs(number) < 10 else f"{number:,.0f} d"
    if float(number).is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:.4g}"


def best_indices(values: Sequence[Any], better: Better | None) -> set[int]:
    """Return the positions of the best value(s); empty when there is nothing to rank.

    Nothing is ranked when the direction is unknown, fewer than two values are
    numbers, or all numbers are equal.
    """
    if better is None:
        return set()
    numbers = [(i, n) for i, n in enumerate(_number(v) for v in values) if n is not None]
    if len(numbers) < 2:
        return set()
    scores = [(i, _score(n, better)) for i, n in numbers]
    top = max(s for _, s in scores)
    if all(s == top for _, s in scores):
        return set()
    return {i for i, s in scores if s == top}


def _score(value: float, better: Better) -> float:
    if better == "higher":
        return value
    if better == "lower":
        return -value
    return -abs(value)


def section_order(specs: Iterable[MetricSpec]) -> list[tuple[str, list[MetricSpec]]]:
    """Group ``specs`` by section, in :data:`SECTIONS` order, dropping empty sections."""
    groups: dict[str, list[MetricSpec]] = {s: [] for s in SECTIONS}
    for spec in specs:
        groups.setdefault(spec.section, []).append(spec)
    return [(name, rows) for name, rows in groups.items() if rows]
