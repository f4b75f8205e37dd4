"""HTML pieces of the tearsheet that are not charts: run facts, metrics, drawdowns, trades."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantfleet.analytics.display import METRICS, format_value, metric_rows, section_order
from quantfleet.analytics.drawdowns import Drawdown
from quantfleet.analytics.page import Cell, esc, table
from quantfleet.core.types import US_PER_DAY

__all__ = [
    "TradeArrays",
    "drawdowns_table",
    "facts",
    "format_times",
    "kpis",
    "metrics_sections",
    "trade_arrays",
    "trades_table",
]

_UNIVERSE_SHOWN = 12


def format_times(ts: np.ndarray, *, intraday: bool) -> list[str]:
    """Return UTC microsecond timestamps as 'YYYY-MM-DD' (daily) or 'YYYY-MM-DD HH:MM' (intraday)."""
    t = np.asarray(ts, dtype=np.int64).astype("datetime64[us]")
    text = np.datetime_as_string(t, unit="m" if intraday else "D")
    return [s.replace("T", " ") for s in text.tolist()]


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _pairs(mapping: Mapping[str, Any] | None) -> str:
    if not mapping:
        return "none"
    return ", ".join(f"{k} = {_compact(v)}" for k, v in sorted(mapping.items()))


def _universe(symbols: Sequence[str]) -> str:
    if not symbols:
        return "n/a"
    shown = ", ".join(esc(s) for s in symbols[:_UNIVERSE_SHOWN])
    if len(symbols) <= _UNIVERSE_SHOWN:
        return f"{len(symbols)}: {shown}"
    everything = ", ".join(esc(s) for s in symbols)
    return f"<details><summary>{len(symbols)} symbols: {shown}, …</summary>{everything}</details>"


def _date(value: Any) -> str:
    return format_value(value, "date")


def facts(manifest: Mapping[str, Any], benchmark_name: str | None) -> str:
    """Return the reproducibility header: everything needed to run the same backtest again."""
    strategy = manifest.get("strategy") or {}
    m = manifest.get
    items: list[tuple[str, str]] = [
        ("Strategy", esc(f"{strategy.get('name', 'n/a')} ({strategy.get('kind', 'n/a')})")),
        ("Strategy file", f"<code>{esc(strategy.get('file', 'n/a'))}</code>"),
        ("Code hash (sha256)", f'<code class="qf-code-hash">{esc(strategy.get("sha256", "n/a"))}</code>'),
        ("Parameters", f"<code>{esc(_pairs(m('parameters')))}</code>"),
        ("Universe", _universe([str(s) for s in (m("universe") or [])])),
        ("Period requested", esc(f"{m('start', 'n/a')} → {m('end', 'n/a')}")),
        ("Bars", esc(f"{m('bars', 'n/a')} × {m('frequency', 'n/a')}")),
        ("First and last bar", esc(f"{_date(m('first_bar'))} → {_date(m('last_bar'))}")),
        ("Data snapshot", f'<span class="qf-snapshot">{esc(m("snapshot", "n/a"))}</span>'),
        ("Engine version", esc(m("engine_version", "n/a"))),
        ("Engine settings", f"<code>{esc(_pairs(m('engine')))}</code>"),
        ("Seed", esc(m("seed", "n/a"))),
        ("Benchmark", esc(benchmark_name or "none")),
    ]
    body = "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in items)
    return f'<section class="card" id="qf-facts"><h2>Run</h2><dl class="facts">{body}</dl></section>'


def _signed_css(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value) and value != 0:
        return "pos" if value > 0 else "neg"
    return ""


def kpis(metrics: Mapping[str, Any]) -> str:
    """Return the strip of headline numbers."""
    keys = ("total_return", "cagr", "sharpe", "max_drawdown", "annual_volatility", "trades")
    cells = []
    for key in keys:
        spec = METRICS[key]
        value = metrics.get(key)
        css = _signed_css(value) if spec.fmt == "pct" and key != "annual_volatility" else ""
        cells.append(
            f'<div class="kpi"><div class="l">{esc(spec.label)}</div>'
            f'<div class="v {css}">{esc(format_value(value, spec.fmt))}</div></div>'
        )
    return f'<div class="kpis">{"".join(cells)}</div>'


def metrics_sections(
    metrics: Mapping[str, Any],
    benchmark_metrics: Mapping[str, Any] | None,
    benchmark_name: str | None,
    notes: Mapping[str, str],
) -> str:
    """Return the metrics table, one small table per section, strategy beside benchmark."""
    with_bench = benchmark_metrics is not None
    headers: list[Cell | str] = ["Metric", "Strategy"]
    if with_bench:
        headers.append(benchmark_name or "Benchmark")
    parts = []
    for section, specs in section_order(metric_rows(metrics, benchmark_metrics)):
        rows = []
        for spec in specs:
            value = metrics.get(spec.key)
            text = format_value(value, spec.fmt)
            css = "na" if text == "n/a" else ""
            row: list[Cell | str] = [spec.label, Cell(text, title=notes.get(spec.key, ""), css=css)]
            if benchmark_metrics is not None:
                shown = spec.benchmark or (spec.key in benchmark_metrics and spec.key not in METRICS)
                bench = format_value(benchmark_metrics.get(spec.key), spec.fmt) if shown else "—"
                row.append(Cell(bench, css="na" if bench in ("n/a", "—") else ""))
            rows.append(row)
        parts.append(f"<section><h3>{esc(section)}</h3>{table(headers, rows, css='qf-metrics')}</section>")
    sections = "".join(parts)
    return (
        f'<section class="card wide" id="qf-metrics"><h2>Metrics</h2><div class="sections">{sections}</div></section>'
    )


def _days(span_us: int) -> str:
    days = span_us / US_PER_DAY
    return f"{days:,.1f}" if days < 10 else f"{days:,.0f}"


def drawdowns_table(worst: Sequence[Drawdown], ts: np.ndarray, *, intraday: bool) -> str:
    """Return the worst drawdown episodes: depth, peak, trough, recovery and lengths in days."""
    times = format_times(ts, intraday=intraday)
    rows = []
    for rank, d in enumerate(worst, 1):
        end = d.recovery if d.recovery is not None else len(ts) - 1
        rows.append(
            [
                Cell(str(rank), sort=rank),
                Cell(format_value(d.depth, "pct"), sort=d.depth, css="neg"),
                Cell(times[d.peak], sort=d.peak),
                Cell(times[d.trough], sort=d.trough),
                Cell(times[d.recovery] if d.recovery is not None else "not recovered", sort=end),
                Cell(_days(int(ts[d.trough] - ts[d.peak])), sort=int(ts[d.trough] - ts[d.peak])),
                Cell(_days(int(ts[end] - ts[d.peak])), sort=int(ts[end] - ts[d.peak])),
            ]
        )
    if not rows:
        return (
            '<section class="card wide" id="qf-drawdowns"><h2>Worst drawdowns</h2>'
            '<p class="note">No drawdowns.</p></section>'
        )
    headers: list[Cell | str] = [
        Cell("#", sort="num"),
        Cell("Depth", sort="num"),
        Cell("Peak", sort="num"),
        Cell("Trough", sort="num"),
        Cell("Recovery", sort="num"),
        Cell("Days to trough", sort="num"),
        Cell("Days under water", sort="num"),
    ]
    html_table = table(headers, rows, css="sortable", table_id="qf-drawdowns-table")
    return f'<section class="card wide" id="qf-drawdowns"><h2>Worst drawdowns</h2>{html_table}</section>'


@dataclass(frozen=True)
class TradeArrays:
    """The round-trip table as NumPy columns; times in UTC microseconds, -1 where null (open trades)."""

    symbol: np.ndarray
    long: np.ndarray
    quantity: np.ndarray
    entry_time: np.ndarray
    exit_time: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    pnl: np.ndarray
    ret: np.ndarray
    commission: np.ndarray
    open: np.ndarray

    def __len__(self) -> int:
        return len(self.symbol)


def _floats(trades: pa.Table, name: str) -> np.ndarray:
    if name not in trades.column_names:
        return np.full(trades.num_rows, np.nan)
    return np.asarray(pc.fill_null(trades.column(name).cast(pa.float64()), np.nan).to_numpy(), dtype=np.float64)


def _times(trades: pa.Table, name: str) -> np.ndarray:
    column = trades.column(name).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(pc.fill_null(column, -1).to_numpy(), dtype=np.int64)


def trade_arrays(trades: pa.Table) -> TradeArrays:
    """Return the columns of the round-trip table (schema in :mod:`quantfleet.analytics.tearsheet`)."""
    symbols = trades.column("symbol").to_pylist()
    direction = np.array([str(d).lower() for d in trades.column("direction").to_pylist()], dtype=str)
    is_open = pc.fill_null(trades.column("open"), False).to_numpy(zero_copy_only=False)
    return TradeArrays(
        symbol=np.array([str(s) for s in symbols], dtype=str),
        long=direction != "short",
        quantity=_floats(trades, "quantity"),
        entry_time=_times(trades, "entry_time"),
        exit_time=_times(trades, "exit_time"),
        entry_price=_floats(trades, "entry_price"),
        exit_price=_floats(trades, "exit_price"),
        pnl=_floats(trades, "pnl"),
        ret=_floats(trades, "return"),
        commission=_floats(trades, "commission"),
        open=np.asarray(is_open, dtype=bool),
    )


def _price(p: float) -> str:
    if not np.isfinite(p):
        return "—"
    return f"{p:,.2f}" if abs(p) >= 1 else f"{p:.4g}"


def _num(value: float, text: str) -> Cell:
    finite = bool(np.isfinite(value))
    return Cell(text if finite else "—", sort=float(value) if finite else None, css=_signed_css(value))


def trades_table(t: TradeArrays, *, intraday: bool, max_rows: int) -> str:
    """Return the sortable round-trip table, the first ``max_rows`` trades by entry time."""
    n = len(t)
    if n == 0:
        return '<section class="card wide" id="qf-trades"><h2>Trades</h2><p class="note">No trades.</p></section>'
    order = np.argsort(t.entry_time, kind="stable")[:max_rows]
    entry = format_times(t.entry_time[order], intraday=intraday)
    exits = format_times(np.maximum(t.exit_time[order], 0), intraday=intraday)
    rows = []
    for k, i in enumerate(order.tolist()):
        is_open = bool(t.open[i]) or t.exit_time[i] < 0
        rows.append(
            [
                Cell(str(t.symbol[i])),
                Cell("long" if t.long[i] else "short", css="txt"),
                Cell(f"{t.quantity[i]:,.6g}", sort=float(t.quantity[i])),
                Cell(entry[k], sort=int(t.entry_time[i])),
                Cell(_price(t.entry_price[i]), sort=float(t.entry_price[i])),
                Cell("open" if is_open else exits[k], sort=int(t.exit_time[i]), css="txt" if is_open else ""),
                Cell(_price(t.exit_price[i]), sort=float(t.exit_price[i]) if np.isfinite(t.exit_price[i]) else None),
                _num(t.pnl[i], f"{t.pnl[i]:,.2f}"),
                _num(t.ret[i], f"{t.ret[i]:.2%}"),
                Cell(f"{t.commission[i]:,.2f}", sort=float(t.commission[i])),
            ]
        )
    headers: list[Cell | str] = [
        "Symbol",
        Cell("Side", css="txt"),
        *(Cell(h, sort="num") for h in ("Quantity", "Entry", "Entry price", "Exit", "Exit price")),
        *(Cell(h, sort="num") for h in ("P&L", "Return", "Commission")),
    ]
    shown = len(order)
    note = f"{n:,} round trips; click a column to sort."
    if shown < n:
        note = f"Showing the first {shown:,} of {n:,} round trips by entry time; all are in trades.parquet."
    html_table = table(headers, rows, css="sortable", table_id="qf-trades-table")
    return (
        f'<section class="card wide" id="qf-trades"><h2>Trades</h2>'
        f'<div class="scroll">{html_table}</div><p class="note qf-trades-note">{esc(note)}</p></section>'
    )
