"""Plotly figures for the tearsheet and the compare page.

Each builder takes plain arrays (already computed by :mod:`.series`) and
returns a :class:`Chart`: a stable div id, a title, the figure and how many
traces it holds (the browser test checks that number). Long series are
downsampled per trace with :func:`.series.minmax_indices`. Colours are
fixed: the strategy blue, the benchmark grey, gains green, losses red.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from quantfleet.analytics.series import MonthlyTable, minmax_indices, month_names

__all__ = [
    "BENCHMARK",
    "PALETTE",
    "STRATEGY",
    "TRACES_PER_SYMBOL",
    "Chart",
    "SymbolTrades",
    "base_layout",
    "distribution_chart",
    "equity_chart",
    "exposure_chart",
    "monthly_chart",
    "overlay_chart",
    "prices_chart",
    "rolling_chart",
    "underwater_chart",
]

STRATEGY = "#1f5fbf"
STRATEGY_LIGHT = "#87aee6"
BENCHMARK = "#8a8f98"
GAIN = "#1e8e3e"
LOSS = "#c0392b"
PALETTE = ("#1f5fbf", "#e07b00", "#1e8e3e", "#8e44ad", "#c0392b", "#00838f", "#6d4c41", "#d81b60", "#546e7a")
FONT = "-apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_DIVERGING = [[0.0, "#c0392b"], [0.5, "#f7f7f7"], [1.0, "#1e8e3e"]]


@dataclass(frozen=True)
class Chart:
    """One figure to place on a page."""

    id: str
    title: str
    figure: go.Figure
    traces: int
    wide: bool = True
    note: str = ""


@dataclass(frozen=True)
class SymbolTrades:
    """Entry and exit markers of one symbol: times in ms, prices and hover text."""

    entry_ms: np.ndarray
    entry_price: np.ndarray
    entry_long: np.ndarray
    entry_text: list[str]
    exit_ms: np.ndarray
    exit_price: np.ndarray
    exit_text: list[str]


def _axis() -> dict[str, Any]:
    return {"gridcolor": "#e9edf2", "linecolor": "#c9d1db", "zerolinecolor": "#c9d1db", "automargin": True}


def base_layout(height: int, *, intraday: bool = False, date_axis: bool = True) -> dict[str, Any]:
    """Return the shared layout: fonts, margins, grid colours, and a UTC date x axis."""
    x = _axis()
    if date_axis:
        x |= {"type": "date", "hoverformat": "%Y-%m-%d %H:%M" if intraday else "%Y-%m-%d"}
    return {
        "template": "none",
        "height": height,
        "font": {"family": FONT, "size": 12, "color": "#243447"},
        "margin": {"l": 64, "r": 24, "t": 40, "b": 40},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hovermode": "x unified",
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "xanchor": "left", "yanchor": "bottom"},
        "xaxis": x,
        "yaxis": _axis(),
    }


def _line(x: np.ndarray, y: np.ndarray, name: str, color: str, max_points: int, **kw: Any) -> go.Scatter:
    idx = minmax_indices(y, max_points)
    return go.Scatter(
        x=x[idx], y=y[idx], name=name, mode="lines", line={"color": color, "width": kw.pop("width", 1.6)}, **kw
    )


def _empty_note(fig: go.Figure, text: str) -> None:
    fig.add_annotation(
        text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"color": "#6b7785", "size": 13}
    )


def equity_chart(
    ms: np.ndarray,
    equity: np.ndarray,
    benchmark: np.ndarray | None,
    benchmark_name: str,
    *,
    intraday: bool,
    max_points: int,
) -> Chart:
    """Return the equity curve against the benchmark (rebased to the starting equity), with a log toggle."""
    fig = go.Figure(layout=base_layout(420, intraday=intraday))
    fig.add_trace(_line(ms, equity, "Strategy", STRATEGY, max_points, width=2.0))
    note = ""
    if benchmark is not None:
        fig.add_trace(_line(ms, benchmark, benchmark_name, BENCHMARK, max_points))
        note = f"{benchmark_name} rebased to the strategy's starting equity."
    fig.update_layout(
        yaxis={"title": {"text": "Equity"}, "tickformat": ",.0f"},
        updatemenus=[_scale_buttons()],
    )
    return Chart("qf-equity", "Equity", fig, len(fig.data), note=note)


def _scale_buttons() -> dict[str, Any]:
    return {
        "type": "buttons",
        "direction": "right",
        "x": 1.0,
        "xanchor": "right",
        "y": 1.02,
        "yanchor": "bottom",
        "showactive": True,
        "active": 0,
        "pad": {"r": 0, "t": 0},
        "font": {"size": 11},
        "buttons": [
            {"label": "Linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
            {"label": "Log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
        ],
    }


def underwater_chart(ms: np.ndarray, depth: np.ndarray, *, intraday: bool, max_points: int) -> Chart:
    """Return the underwater curve: distance below the running peak, as a filled area."""
    fig = go.Figure(layout=base_layout(260, intraday=intraday))
    fig.add_trace(
        _line(ms, depth, "Drawdown", LOSS, max_points, width=1.2, fill="tozeroy", fillcolor="rgba(192,57,43,0.18)")
    )
    fig.update_layout(yaxis={"tickformat": ".0%", "title": {"text": "Below peak"}}, showlegend=False)
    return Chart("qf-underwater", "Underwater (drawdown)", fig, 1)


def monthly_chart(table: MonthlyTable) -> Chart:
    """Return the monthly returns heat map with a column of yearly totals."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.88, 0.12], shared_yaxes=True, horizontal_spacing=0.015)
    years = [str(y) for y in table.years]
    limit = float(np.nanmax(np.abs(table.months))) if np.isfinite(table.months).any() else 0.01
    common = {"colorscale": _DIVERGING, "zmid": 0.0, "showscale": False, "xgap": 2, "ygap": 2}
    fig.add_trace(
        go.Heatmap(
            z=table.months,
            x=list(month_names()),
            y=years,
            zmin=-limit,
            zmax=limit,
            texttemplate="%{z:.1%}",
            hovertemplate="%{y} %{x}: %{z:.2%}<extra></extra>",
            name="Monthly",
            **common,
        ),
        row=1,
        col=1,
    )
    year_limit = float(np.nanmax(np.abs(table.yearly))) if np.isfinite(table.yearly).any() else 0.01
    fig.add_trace(
        go.Heatmap(
            z=table.yearly.reshape(-1, 1),
            x=["Year"],
            y=years,
            zmin=-year_limit,
            zmax=year_limit,
            texttemplate="%{z:.1%}",
            hovertemplate="%{y}: %{z:.2%}<extra></extra>",
            name="Yearly",
            **common,
        ),
        row=1,
        col=2,
    )
    layout = base_layout(max(170, 70 + 26 * len(years)), date_axis=False)
    layout["hovermode"] = "closest"
    fig.update_layout(layout)
    fig.update_yaxes(autorange="reversed", type="category", showgrid=False)
    fig.update_xaxes(side="top", showgrid=False, type="category")
    return Chart("qf-monthly", "Monthly returns", fig, 2, wide=False)


def rolling_chart(
    ms: np.ndarray,
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    intraday: bool,
    max_points: int,
    note: str,
) -> Chart:
    """Return rolling Sharpe (top) and rolling volatility (bottom); ``series`` maps label -> (sharpe, vol)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    colors = (STRATEGY_LIGHT, STRATEGY)
    for (label, (sharpe, vol)), color in zip(series.items(), colors, strict=False):
        fig.add_trace(_line(ms, sharpe, f"Sharpe {label}", color, max_points, legendgroup=label), row=1, col=1)
        fig.add_trace(_line(ms, vol, f"Volatility {label}", color, max_points, legendgroup=label), row=2, col=1)
    layout = base_layout(440, intraday=intraday)
    fig.update_layout(layout)
    fig.update_xaxes(type="date", gridcolor="#e9edf2", linecolor="#c9d1db")
    fig.update_yaxes(gridcolor="#e9edf2", zerolinecolor="#c9d1db")
    fig.update_yaxes(title_text="Sharpe", row=1, col=1)
    fig.update_yaxes(title_text="Volatility", tickformat=".0%", row=2, col=1)
    if note:
        _empty_note(fig, note)
        fig.update_yaxes(showticklabels=False)
    return Chart("qf-rolling", "Rolling Sharpe and volatility", fig, len(fig.data), note=note)


def distribution_chart(centres: np.ndarray, counts: np.ndarray, width: float, label: str) -> Chart:
    """Return the histogram of period returns (bins computed in Python, so the page holds no raw returns)."""
    layout = base_layout(340, date_axis=False)
    layout["hovermode"] = "closest"
    fig = go.Figure(layout=layout)
    # Losses red, gains green; the bin holding zero (flat periods) grey.
    half = width / 2.0
    colors = np.where(centres + half <= 0, LOSS, np.where(centres - half >= 0, GAIN, BENCHMARK)).tolist()
    fig.add_trace(
        go.Bar(
            x=centres,
            y=counts,
            width=width * 0.92 if width else None,
            marker={"color": colors, "opacity": 0.8},
            name=label,
            hovertemplate="%{x:.2%}: %{y}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis={"tickformat": ".1%", "title": {"text": label}},
        yaxis={"title": {"text": "Count"}},
        showlegend=False,
        bargap=0,
    )
    if len(counts) == 0:
        _empty_note(fig, "No returns to show.")
    return Chart("qf-distribution", "Distribution of returns", fig, 1, wide=False)


def exposure_chart(
    ms: np.ndarray,
    gross: np.ndarray,
    net: np.ndarray,
    equity: np.ndarray,
    *,
    intraday: bool,
    max_points: int,
) -> Chart:
    """Return gross and net exposure (currency, top) and leverage (exposure / equity, bottom)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    safe = np.where(equity > 0, equity, np.nan)
    gross_lev, net_lev = gross / safe, net / safe
    fill = {"fill": "tozeroy", "fillcolor": "rgba(31,95,191,0.12)"}
    fig.add_trace(_line(ms, gross, "Gross exposure", STRATEGY, max_points, **fill), row=1, col=1)
    fig.add_trace(_line(ms, net, "Net exposure", "#e07b00", max_points), row=1, col=1)
    fig.add_trace(_line(ms, gross_lev, "Gross leverage", STRATEGY, max_points, showlegend=False), row=2, col=1)
    fig.add_trace(_line(ms, net_lev, "Net leverage", "#e07b00", max_points, showlegend=False), row=2, col=1)
    fig.update_layout(base_layout(440, intraday=intraday))
    fig.update_xaxes(type="date", gridcolor="#e9edf2", linecolor="#c9d1db")
    fig.update_yaxes(gridcolor="#e9edf2", zerolinecolor="#c9d1db")
    fig.update_yaxes(title_text="Exposure", tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="Leverage", tickformat=".2f", ticksuffix="×", row=2, col=1)
    return Chart("qf-exposure", "Exposure and leverage", fig, 4)


def prices_chart(
    ms: np.ndarray,
    prices: Mapping[str, np.ndarray],
    markers: Mapping[str, SymbolTrades],
    *,
    intraday: bool,
    max_points: int,
    note: str,
) -> Chart:
    """Return one price line with entry and exit markers per symbol; a dropdown picks the symbol."""
    fig = go.Figure(layout=base_layout(460, intraday=intraday))
    symbols = list(prices)
    for i, symbol in enumerate(symbols):
        visible = i == 0
        fig.add_trace(_line(ms, prices[symbol], symbol, "#243447", max_points, width=1.3, visible=visible))
        m = markers[symbol]
        for long, name in ((True, "Long entry"), (False, "Short entry")):
            pick = np.flatnonzero(m.entry_long == long)
            text = [m.entry_text[k] for k in pick.tolist()]
            fig.add_trace(_markers(m.entry_ms[pick], m.entry_price[pick], text, name, visible, _ENTRY[long]))
        fig.add_trace(_markers(m.exit_ms, m.exit_price, m.exit_text, "Exit", visible, _EXIT))
    fig.update_layout(yaxis={"title": {"text": "Close"}}, hovermode="closest")
    if symbols:
        fig.update_layout(updatemenus=[_symbol_menu(symbols)])
    else:
        _empty_note(fig, "No traded symbols.")
    return Chart("qf-prices", "Traded symbols", fig, len(fig.data), note=note)


TRACES_PER_SYMBOL = 4
_ENTRY = {
    True: {"symbol": "triangle-up", "color": GAIN, "size": 10},
    False: {"symbol": "triangle-down", "color": LOSS, "size": 10},
}
_EXIT = {"symbol": "x-thin", "color": "#243447", "size": 9, "line": {"width": 2, "color": "#243447"}}


def _markers(
    x: np.ndarray, y: np.ndarray, text: Sequence[str], name: str, visible: bool, marker: dict[str, Any]
) -> go.Scatter:
    return go.Scatter(
        x=x,
        y=y,
        text=list(text),
        name=name,
        mode="markers",
        visible=visible,
        marker=marker,
        hovertemplate="%{text}<extra></extra>",
    )


def _symbol_menu(symbols: Sequence[str]) -> dict[str, Any]:
    buttons = []
    per = TRACES_PER_SYMBOL
    for i, symbol in enumerate(symbols):
        visible = [j // per == i for j in range(per * len(symbols))]
        buttons.append({"label": symbol, "method": "update", "args": [{"visible": visible}]})
    return {
        "type": "dropdown",
        "x": 1.0,
        "xanchor": "right",
        "y": 1.02,
        "yanchor": "bottom",
        "active": 0,
        "showactive": True,
        "font": {"size": 11},
        "buttons": buttons,
    }


def overlay_chart(
    lines: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    chart_id: str,
    title: str,
    y_title: str,
    y_format: str,
    log_toggle: bool,
    max_points: int,
    intraday: bool = False,
) -> Chart:
    """Return several (name, ms, y) lines on one date axis, coloured from :data:`PALETTE` in order."""
    fig = go.Figure(layout=base_layout(420, intraday=intraday))
    for i, (name, ms, y) in enumerate(lines):
        fig.add_trace(_line(ms, y, name, PALETTE[i % len(PALETTE)], max_points, width=1.8))
    fig.update_layout(yaxis={"title": {"text": y_title}, "tickformat": y_format})
    if log_toggle:
        fig.update_layout(updatemenus=[_scale_buttons()])
    return Chart(chart_id, title, fig, len(lines))
