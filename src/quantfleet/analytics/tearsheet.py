"""The tearsheet: one self-contained HTML file reporting a backtest.

:func:`render_tearsheet` turns a :class:`TearsheetData` (what the runner
already holds: the manifest, per-bar equity and exposure, the metrics, the
round trips, and the closes of the traded symbols) into the page; the same
inputs always give the same bytes. Long series are downsampled for display
only (min and max per bucket, at most ``max_points`` per trace) and the
trades table shows at most ``max_trade_rows`` rows, so a 20-year run of 500
symbols stays a few megabytes and opens at once.

Rolling windows are 6 and 12 months of bars (``periods_per_year`` / 2 and
``periods_per_year``). The returns histogram uses daily returns (last bar of
each UTC day) once the run spans 20 days or more, bar returns below that.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from quantfleet.analytics import charts as ch
from quantfleet.analytics import series
from quantfleet.analytics.drawdowns import underwater, worst_drawdowns
from quantfleet.analytics.page import chart_card, esc, page
from quantfleet.analytics.tables import (
    TradeArrays,
    drawdowns_table,
    facts,
    format_times,
    kpis,
    metrics_sections,
    trade_arrays,
    trades_table,
)
from quantfleet.core.types import US_PER_DAY

__all__ = ["TearsheetData", "render_tearsheet", "write_atomic", "write_tearsheet"]

_MIN_DAYS_FOR_DAILY = 20
_WORST_DRAWDOWNS = 10


@dataclass(frozen=True)
class TearsheetData:
    """Everything a tearsheet shows, already loaded; arrays are aligned per bar.

    ``trades`` holds round trips: symbol, direction ('long'/'short'),
    quantity, entry_time, exit_time (null while open), entry_price,
    exit_price, pnl (NaN while open), return, commission, open.
    ``notes`` maps a metric key to the reason it is None (shown on hover).
    """

    manifest: Mapping[str, Any]
    ts: np.ndarray
    equity: np.ndarray
    gross_exposure: np.ndarray
    net_exposure: np.ndarray
    metrics: Mapping[str, Any]
    benchmark_metrics: Mapping[str, Any] | None
    benchmark: np.ndarray | None
    benchmark_name: str | None
    trades: pa.Table
    prices: Mapping[str, np.ndarray]
    periods_per_year: float
    notes: Mapping[str, str] = field(default_factory=dict)


def _is_intraday(manifest: Mapping[str, Any], ts: np.ndarray) -> bool:
    frequency = str(manifest.get("frequency") or "")
    if frequency:
        return not frequency.endswith(("d", "w", "mo", "M", "y"))
    return bool(len(ts) and np.any(ts % US_PER_DAY))


def _rebased(benchmark: np.ndarray | None, equity: np.ndarray) -> np.ndarray | None:
    """Return the benchmark scaled to start where the strategy's equity starts."""
    if benchmark is None or len(equity) == 0:
        return None
    b = np.asarray(benchmark, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(b) & (b > 0))
    if len(valid) == 0 or not np.isfinite(equity[0]):
        return b
    return b * (float(equity[0]) / float(b[valid[0]]))


def _rolling(data: TearsheetData, returns: np.ndarray) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    ppy = float(data.periods_per_year)
    windows = {"6m": round(ppy / 2), "12m": round(ppy)}
    out = {label: series.rolling_sharpe_vol(returns, w, ppy) for label, w in windows.items()}
    note = ""
    if len(returns) < windows["6m"]:
        need = f"{windows['6m']:,} and {windows['12m']:,}"
        note = f"Rolling windows need {need} bar returns; this run has {len(returns):,}."
    return out, note


def _distribution(data: TearsheetData, intraday: bool) -> ch.Chart:
    ts, equity = np.asarray(data.ts), np.asarray(data.equity, dtype=np.float64)
    frequency = str(data.manifest.get("frequency") or "bar")
    day_ts, day_equity = series.daily_last(ts, equity)
    if intraday and len(day_ts) > _MIN_DAYS_FOR_DAILY:
        returns, label = series.bar_returns(day_equity), "Daily return"
    else:
        returns = series.bar_returns(equity)
        label = "Daily return" if frequency == "1d" else f"Return per bar ({frequency})"
    centres, counts, width = series.histogram(returns)
    return ch.distribution_chart(centres, counts, width, label)


def _symbol_trades(t: TradeArrays, symbol: str, max_markers: int) -> ch.SymbolTrades:
    idx = np.flatnonzero(t.symbol == symbol)[:max_markers]
    closed = idx[t.exit_time[idx] >= 0]

    def entry_text(i: int) -> str:
        side = "Long" if t.long[i] else "Short"
        return f"{side} {t.quantity[i]:,.6g} @ {t.entry_price[i]:,.4g}"

    def exit_text(i: int) -> str:
        return f"Exit @ {t.exit_price[i]:,.4g}, P&L {t.pnl[i]:,.2f} ({t.ret[i]:.2%})"

    return ch.SymbolTrades(
        entry_ms=series.to_ms(t.entry_time[idx]),
        entry_price=t.entry_price[idx],
        entry_long=t.long[idx],
        entry_text=[entry_text(i) for i in idx.tolist()],
        exit_ms=series.to_ms(t.exit_time[closed]),
        exit_price=t.exit_price[closed],
        exit_text=[exit_text(i) for i in closed.tolist()],
    )


def _prices(data: TearsheetData, t: TradeArrays, ms: np.ndarray, *, intraday: bool, kw: Mapping[str, int]) -> ch.Chart:
    names, counts = np.unique(t.symbol, return_counts=True)
    count = dict(zip(names.tolist(), counts.tolist(), strict=True))
    ranked = sorted(data.prices, key=lambda s: (-count.get(s, 0), s))
    chosen = ranked[: kw["max_symbols"]]
    markers = {s: _symbol_trades(t, s, kw["max_markers"]) for s in chosen}
    prices = {s: np.asarray(data.prices[s], dtype=np.float64) for s in chosen}
    note = "Pick a symbol from the menu; hover a marker to see its trade."
    if len(ranked) > len(chosen):
        note = f"Showing {len(chosen)} of {len(ranked)} traded symbols, most trades first. " + note
    if any(int(np.sum(t.symbol == s)) > kw["max_markers"] for s in chosen):
        note += f" At most {kw['max_markers']:,} trades per symbol are marked."
    return ch.prices_chart(ms, prices, markers, intraday=intraday, max_points=kw["max_points"], note=note)


def _charts(data: TearsheetData, t: TradeArrays, *, intraday: bool, kw: Mapping[str, int]) -> list[ch.Chart]:
    ts = np.asarray(data.ts, dtype=np.int64)
    equity = np.asarray(data.equity, dtype=np.float64)
    ms = series.to_ms(ts)
    mp = kw["max_points"]
    returns = series.bar_returns(equity)
    rolling, rolling_note = _rolling(data, returns)
    bench = _rebased(data.benchmark, equity)
    gross = np.asarray(data.gross_exposure, dtype=np.float64)
    net = np.asarray(data.net_exposure, dtype=np.float64)
    return [
        ch.equity_chart(ms, equity, bench, data.benchmark_name or "Benchmark", intraday=intraday, max_points=mp),
        ch.underwater_chart(ms, underwater(equity), intraday=intraday, max_points=mp),
        ch.monthly_chart(series.monthly_table(ts, equity)),
        _distribution(data, intraday),
        ch.rolling_chart(ms[1:], rolling, intraday=intraday, max_points=mp, note=rolling_note),
        ch.exposure_chart(ms, gross, net, equity, intraday=intraday, max_points=mp),
        _prices(data, t, ms, intraday=intraday, kw=kw),
    ]


def _title(data: TearsheetData, intraday: bool) -> tuple[str, str]:
    strategy = data.manifest.get("strategy") or {}
    name = str(strategy.get("name") or "Backtest")
    ts = np.asarray(data.ts, dtype=np.int64)
    if len(ts):
        first, last = format_times(ts[[0, -1]], intraday=intraday)
        span = f"{first} → {last} UTC" if intraday else f"{first} → {last}"
    else:
        span = "no bars"
    bench = f" · against {data.benchmark_name}" if data.benchmark is not None and data.benchmark_name else ""
    return name, f"{span} · {len(ts):,} bars of {data.manifest.get('frequency') or 'n/a'}{bench}"


def render_tearsheet(
    data: TearsheetData,
    *,
    max_symbols: int = 10,
    max_points: int = 5000,
    max_trade_rows: int = 1000,
    max_markers: int = 1000,
) -> str:
    """Return the tearsheet HTML: run facts, metrics, charts, worst drawdowns and trades."""
    kw = {"max_symbols": max_symbols, "max_points": max_points, "max_markers": max_markers}
    intraday = _is_intraday(data.manifest, np.asarray(data.ts))
    t = trade_arrays(data.trades)
    charts = _charts(data, t, intraday=intraday, kw=kw)
    name, subtitle = _title(data, intraday)
    version = esc(data.manifest.get("engine_version", "n/a"))
    worst = worst_drawdowns(np.asarray(data.equity, dtype=np.float64), _WORST_DRAWDOWNS)
    body = "\n".join(
        [
            f'<header class="top"><div><h1>{esc(name)}</h1><div class="sub">{esc(subtitle)}</div></div>'
            f'<div class="brand">quantfleet tearsheet<br>engine {version}</div></header>',
            facts(data.manifest, data.benchmark_name if data.benchmark is not None else None),
            kpis(data.metrics),
            '<div class="grid">',
            metrics_sections(data.metrics, data.benchmark_metrics, data.benchmark_name, data.notes),
            *(chart_card(c) for c in charts),
            drawdowns_table(worst, np.asarray(data.ts, dtype=np.int64), intraday=intraday),
            trades_table(t, intraday=intraday, max_rows=max_trade_rows),
            "</div>",
            f"<footer>Charts show at most {max_points:,} points per line (minimum and maximum per bucket); "
            "exact series are in the run's Parquet artifacts. Times are UTC.</footer>",
        ]
    )
    return page(f"{name} · tearsheet", body, charts)


def write_atomic(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read by the web face too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_tearsheet(data: TearsheetData, path: Path, **kw: Any) -> Path:
    """Render the tearsheet and write it atomically to ``path``; keywords go to :func:`render_tearsheet`."""
    return write_atomic(render_tearsheet(data, **kw), path)
