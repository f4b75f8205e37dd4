"""Figures of the dashboard, built with the tearsheet's chart builders from a job's Parquet artifacts.

Every line is downsampled by :func:`quantfleet.analytics.series.minmax_indices`
(the first, last, low and high of each bucket) to at most :data:`MAX_POINTS`,
so a 20-year minute curve draws as fast as a one-year daily one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa

from quantfleet.analytics import charts as ch
from quantfleet.analytics.drawdowns import underwater
from quantfleet.analytics.series import minmax_indices, to_ms

__all__ = [
    "MAX_POINTS",
    "curve",
    "equity_figure",
    "heatmap_figure",
    "overlay_figure",
    "pnl_figure",
    "price_figure",
    "underwater_figure",
    "walkforward_figure",
]

MAX_POINTS = 2_000


def curve(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Return (ms since the epoch, equity) of an ``equity.parquet`` table."""
    ts = table.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    return to_ms(ts), np.asarray(table.column("equity").to_numpy(), dtype=np.float64)


def _epoch_ms(value: Any) -> float:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000.0


def _intraday(ms: np.ndarray) -> bool:
    return len(ms) > 1 and float(np.median(np.diff(ms))) < 20 * 3_600_000


def _figure(chart: ch.Chart) -> go.Figure:
    fig = chart.figure
    fig.update_layout(autosize=True, height=None if chart.figure.layout.height is None else chart.figure.layout.height)
    return fig


def equity_figure(table: pa.Table, *, max_points: int = MAX_POINTS) -> go.Figure:
    """Return the equity curve of a run, with the tearsheet's linear/log toggle."""
    ms, equity = curve(table)
    return _figure(ch.equity_chart(ms, equity, None, "", intraday=_intraday(ms), max_points=max_points))


def underwater_figure(table: pa.Table, *, max_points: int = MAX_POINTS) -> go.Figure:
    """Return the drawdown (distance below the running peak) of a run."""
    ms, equity = curve(table)
    return _figure(ch.underwater_chart(ms, underwater(equity), intraday=_intraday(ms), max_points=max_points))


def overlay_figure(runs: Sequence[tuple[str, pa.Table]], *, max_points: int = MAX_POINTS) -> go.Figure:
    """Return several runs' equity curves rebased to 1 at their first positive value, on one axis."""
    lines = []
    intraday = False
    for name, table in runs:
        ms, equity = curve(table)
        valid = np.flatnonzero(np.isfinite(equity) & (equity > 0))
        lines.append((name, ms, equity / equity[valid[0]] if len(valid) else equity))
        intraday = intraday or _intraday(ms)
    chart = ch.overlay_chart(
        lines,
        chart_id="qf-compare-equity",
        title="Equity, rebased",
        y_title="Growth of 1",
        y_format=".2f",
        log_toggle=True,
        max_points=max_points,
        intraday=intraday,
    )
    return _figure(chart)


def pnl_figure(points: Sequence[dict[str, Any]], *, max_points: int = MAX_POINTS) -> go.Figure:
    """Return a deployment's equity and cash over time (``GET /v1/deployments/{id}``'s ``pnl`` points)."""
    ms = np.asarray([_epoch_ms(p["at"]) for p in points], dtype=np.float64)
    lines = [
        ("Equity", ms, np.asarray([float(p["equity"]) for p in points], dtype=np.float64)),
        ("Cash", ms, np.asarray([float(p["cash"]) for p in points], dtype=np.float64)),
    ]
    chart = ch.overlay_chart(
        lines,
        chart_id="qf-deployment-pnl",
        title="Equity and cash",
        y_title="Value",
        y_format=",.2f",
        log_toggle=False,
        max_points=max_points,
        intraday=_intraday(ms),
    )
    return _figure(chart)


def price_figure(symbol: str, ts: Sequence[str], close: Sequence[float]) -> go.Figure:
    """Return a symbol's closing prices (already downsampled by the API)."""
    fig = go.Figure(layout=ch.base_layout(380))
    fig.add_trace(
        go.Scatter(x=list(ts), y=list(close), name=symbol, mode="lines", line={"color": ch.STRATEGY, "width": 1.6})
    )
    fig.update_layout(yaxis={"title": {"text": "Close"}}, showlegend=False, autosize=True)
    return fig


def heatmap_figure(rows: Sequence[dict[str, Any]], x: str, y: str, metric: str) -> go.Figure:
    """Return ``metric`` over two parameters (the best value where other parameters vary)."""
    xs = sorted({r[x] for r in rows if r.get(x) is not None})
    ys = sorted({r[y] for r in rows if r.get(y) is not None})
    grid = np.full((len(ys), len(xs)), np.nan)
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: i for i, v in enumerate(ys)}
    for r in rows:
        value = r.get(metric)
        if r.get(x) is None or r.get(y) is None or value is None or not np.isfinite(float(value)):
            continue
        cell = (yi[r[y]], xi[r[x]])
        grid[cell] = float(value) if np.isnan(grid[cell]) else max(grid[cell], float(value))
    fig = go.Figure(layout=ch.base_layout(420, date_axis=False))
    fig.add_trace(
        go.Heatmap(
            z=grid.tolist(),
            x=[str(v) for v in xs],
            y=[str(v) for v in ys],
            colorscale=[[0.0, "#c0392b"], [0.5, "#f7f7f7"], [1.0, "#1e8e3e"]],
            colorbar={"title": {"text": metric}},
            hoverongaps=False,
            hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.4g}}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis={"title": {"text": x}, "type": "category"},
        yaxis={"title": {"text": y}, "type": "category"},
        autosize=True,
    )
    return fig


def walkforward_figure(windows: Sequence[dict[str, Any]], metric: str) -> go.Figure:
    """Return each walk-forward window's in-sample beside its out-of-sample ``metric`` (``windows.parquet`` rows)."""
    labels = [f"#{w.get('window', i)} to {str(w.get('test_end') or '')[:10]}" for i, w in enumerate(windows)]
    fig = go.Figure(layout=ch.base_layout(360, date_axis=False))
    sides = (("in_sample.", "In sample", ch.STRATEGY_LIGHT), ("out_of_sample.", "Out of sample", ch.STRATEGY))
    for prefix, name, colour in sides:
        fig.add_trace(go.Bar(x=labels, y=[w.get(prefix + metric) for w in windows], name=name, marker_color=colour))
    fig.update_layout(barmode="group", yaxis={"title": {"text": metric}}, xaxis={"type": "category"}, autosize=True)
    return fig


def downsampled(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Return the indices to draw of a long series (see :func:`minmax_indices`)."""
    return minmax_indices(values, max_points)
