"""The sweep report: one self-contained HTML page for a parameter sweep or a walk-forward.

It shows the leaderboard (the top 50 rows), a heat map of the ranked metric
over two parameters (each cell the best value over the other parameters;
blank where no combination satisfied the constraints), links to the top
combinations' tearsheets and, for a walk-forward, each window's in-sample
against out-of-sample metric, the stitched out-of-sample equity and the
chosen parameters per window (their stability). A pure function of its
inputs: the page uses the tearsheet's HTML shell (plotly.js inlined once, fixed
chart ids, no clock), so the same sweep renders the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa

from quantfleet.analytics.charts import PALETTE, Chart, base_layout
from quantfleet.analytics.page import Cell, chart_card, esc, page, table

__all__ = ["SweepReportData", "WindowRow", "heatmap_grid", "render_sweep_report", "write_sweep_report"]

TOP_ROWS = 50
_PCT = {
    "total_return",
    "cagr",
    "annual_volatility",
    "max_drawdown",
    "win_rate",
    "exposure",
    "avg_drawdown",
    "best_day",
    "worst_day",
    "best_month",
    "worst_month",
    "best_year",
    "worst_year",
    "var_95",
    "cvar_95",
    "positive_periods",
}
_SHOWN = ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "trades", "win_rate", "exposure")


@dataclass(frozen=True)
class WindowRow:
    """One walk-forward window: bounds (ISO strings), the chosen parameters, in- and out-of-sample metrics."""

    index: int
    train_start: str
    train_end: str
    test_end: str
    params: Mapping[str, Any]
    in_sample: Mapping[str, float | None]
    out_of_sample: Mapping[str, float | None]


@dataclass(frozen=True, kw_only=True)
class SweepReportData:
    """What the sweep report shows."""

    title: str
    facts: Mapping[str, str]
    metric: str
    minimize: bool = False
    params: tuple[str, ...]
    leaderboard: pa.Table
    heatmap: tuple[str, str] | None = None
    top: Sequence[tuple[int, str]] = ()  # (rank, relative link to its tearsheet)
    windows: Sequence[WindowRow] = ()
    oos_ts: np.ndarray | None = None
    oos_equity: np.ndarray | None = None
    oos_metrics: Mapping[str, float | None] = field(default_factory=dict)


def _fmt(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key in _PCT:
        return f"{value:.2%}"
    if key == "trades" or (isinstance(value, int)):
        return f"{value:,.0f}"
    return f"{value:,.3f}"


def _num(key: str, value: Any) -> Cell:
    sort = float(value) if isinstance(value, int | float) and math.isfinite(value) else None
    return Cell(_fmt(key, value), sort=sort)


def _column(tbl: pa.Table, name: str) -> list[Any]:
    return tbl.column(name).to_pylist() if name in tbl.column_names else [None] * tbl.num_rows


def _param_column(tbl: pa.Table, name: str) -> str:
    return name if name in tbl.column_names and f"param_{name}" not in tbl.column_names else f"param_{name}"


def heatmap_grid(
    tbl: pa.Table, x: str, y: str, metric: str, *, minimize: bool = False
) -> tuple[list[Any], list[Any], list[list[float | None]]]:
    """Return x values, y values and z[y][x]: the best ``metric`` over the other parameters (None: no row)."""
    xs_all = _column(tbl, _param_column(tbl, x))
    ys_all = _column(tbl, _param_column(tbl, y))
    zs = _column(tbl, metric)
    xs, ys = sorted(set(xs_all)), sorted(set(ys_all))
    xi, yi = {v: i for i, v in enumerate(xs)}, {v: i for i, v in enumerate(ys)}
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for a, b, v in zip(xs_all, ys_all, zs, strict=True):
        if v is None or not math.isfinite(v):
            continue
        cur = z[yi[b]][xi[a]]
        if cur is None or (v < cur if minimize else v > cur):
            z[yi[b]][xi[a]] = float(v)
    return xs, ys, z


def _heatmap_chart(data: SweepReportData) -> Chart | None:
    tbl = data.leaderboard
    if tbl.num_rows == 0 or data.metric not in tbl.column_names:
        return None
    if data.heatmap is None:
        if not data.params:
            return None
        x = data.params[0]
        xs, _, z = heatmap_grid(tbl, x, x, data.metric, minimize=data.minimize)
        values = [z[i][i] for i in range(len(xs))]
        fig = go.Figure(go.Scatter(x=xs, y=values, mode="lines+markers", line={"color": PALETTE[0]}, name=data.metric))
        fig.update_layout(**base_layout(360, date_axis=False), xaxis_title=x, yaxis_title=data.metric)
        return Chart("qf-sweep-metric", f"{data.metric} by {x}", fig, 1)
    x, y = data.heatmap
    xs, ys, z = heatmap_grid(tbl, x, y, data.metric, minimize=data.minimize)
    fig = go.Figure(
        go.Heatmap(
            x=[str(v) for v in xs],
            y=[str(v) for v in ys],
            z=z,
            colorscale="RdYlGn",
            reversescale=data.minimize,
            colorbar={"title": {"text": data.metric}},
            hovertemplate=f"{esc(x)}=%{{x}}<br>{esc(y)}=%{{y}}<br>{esc(data.metric)}=%{{z:.3f}}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_layout(**base_layout(480, date_axis=False), xaxis_title=x, yaxis_title=y)
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    others = [p for p in data.params if p not in (x, y)]
    note = f"each cell: the best {data.metric} over {', '.join(others)}" if others else ""
    return Chart("qf-sweep-heatmap", f"{data.metric} over {x} and {y}", fig, 1, note=note)


def _leaderboard_table(data: SweepReportData) -> str:
    tbl = data.leaderboard.slice(0, TOP_ROWS)
    metrics = [data.metric, *(m for m in _SHOWN if m != data.metric and m in tbl.column_names)]
    cols = {p: _column(tbl, _param_column(tbl, p)) for p in data.params}
    mcols = {m: _column(tbl, m) for m in metrics}
    ranks = _column(tbl, "rank")
    links = dict(data.top)
    headers: list[Cell | str] = [Cell("rank", sort="num")]
    headers += [Cell(p, sort="num") for p in data.params]
    headers += [Cell(m.replace("_", " "), sort="num") for m in metrics]
    headers.append("tearsheet")
    rows = []
    for i, rank in enumerate(ranks):
        row: list[Cell | str] = [Cell(str(rank), sort=rank)]
        row += [_num(p, cols[p][i]) for p in data.params]
        row += [_num(m, mcols[m][i]) for m in metrics]
        row.append(Cell(links[rank], css="link") if rank in links else "")
        rows.append(row)
    body = table(headers, rows, table_id="leaderboard")
    # Links are added after escaping: the href is a relative path the sweep wrote itself.
    for rank, href in links.items():
        body = body.replace(f'<td class="link">{esc(href)}</td>', f'<td><a href="{esc(href)}">#{rank}</a></td>')
    shown = f"top {tbl.num_rows} of {data.leaderboard.num_rows}"
    direction = "lowest" if data.minimize else "highest"
    return (
        f'<section class="card wide"><h2>Leaderboard ({esc(shown)}, {esc(direction)} {esc(data.metric)} first)</h2>'
        f'<div class="scroll">{body}</div></section>'
    )


def _iso_axis(ts: np.ndarray) -> list[str]:
    return np.datetime_as_string(np.asarray(ts, dtype="datetime64[us]"), unit="s").tolist()  # type: ignore[no-any-return]


def _walkforward_parts(data: SweepReportData) -> tuple[str, list[Chart]]:
    if not data.windows:
        return "", []
    m = data.metric
    headers: list[Cell | str] = ["window", "train", "test", *data.params]
    headers += [Cell(f"in-sample {m}", sort="num"), Cell(f"out-of-sample {m}", sort="num")]
    headers += [Cell("in-sample return", sort="num"), Cell("out-of-sample return", sort="num")]
    rows = []
    for w in data.windows:
        row: list[Cell | str] = [str(w.index + 1), f"{w.train_start[:10]} → {w.train_end[:10]}"]
        row.append(f"{w.train_end[:10]} → {w.test_end[:10]}")
        row += [_num(p, w.params.get(p)) for p in data.params]
        row += [_num(m, w.in_sample.get(m)), _num(m, w.out_of_sample.get(m))]
        row += [_num("total_return", w.in_sample.get("total_return"))]
        row += [_num("total_return", w.out_of_sample.get("total_return"))]
        rows.append(row)
    stitched = ", ".join(
        f"{k.replace('_', ' ')} {_fmt(k, data.oos_metrics.get(k))}" for k in _SHOWN if k in data.oos_metrics
    )
    html = (
        '<section class="card wide"><h2>Walk-forward windows</h2>'
        f'<p class="sub">stitched out-of-sample: {esc(stitched)}</p>'
        f'<div class="scroll">{table(headers, rows, table_id="windows")}</div></section>'
    )
    labels = [f"{w.index + 1}: {w.train_end[:10]}" for w in data.windows]
    charts: list[Chart] = []
    fig = go.Figure(
        [
            go.Bar(x=labels, y=[w.in_sample.get(m) for w in data.windows], name="in-sample", marker_color=PALETTE[0]),
            go.Bar(
                x=labels,
                y=[w.out_of_sample.get(m) for w in data.windows],
                name="out-of-sample",
                marker_color=PALETTE[1],
            ),
        ]
    )
    fig.update_layout(
        **base_layout(360, date_axis=False), barmode="group", yaxis_title=m, xaxis_title="window: test start"
    )
    charts.append(Chart("qf-wf-metric", f"In-sample vs out-of-sample {m}", fig, 2, wide=False))
    fig = go.Figure()
    for k, p in enumerate(data.params):
        values = [w.params.get(p) for w in data.windows]
        fig.add_trace(
            go.Scatter(x=labels, y=values, mode="lines+markers", name=p, line={"color": PALETTE[k % len(PALETTE)]})
        )
    fig.update_layout(**base_layout(360, date_axis=False), xaxis_title="window: test start", yaxis_title="chosen value")
    charts.append(
        Chart("qf-wf-params", "Parameter stability: the winner of each window", fig, len(data.params), wide=False)
    )
    if data.oos_ts is not None and data.oos_equity is not None and len(data.oos_ts):
        fig = go.Figure(
            go.Scatter(
                x=_iso_axis(data.oos_ts),
                y=np.asarray(data.oos_equity).tolist(),
                mode="lines",
                name="out-of-sample",
                line={"color": PALETTE[0]},
            )
        )
        for w in data.windows[1:]:
            fig.add_vline(x=w.train_end[:19].replace(" ", "T"), line={"color": "#b0b8c4", "dash": "dot", "width": 1})
        fig.update_layout(**base_layout(380), yaxis_title="equity")
        charts.insert(0, Chart("qf-wf-equity", "Stitched out-of-sample equity (dotted: re-optimization)", fig, 1))
    return html, charts


def render_sweep_report(data: SweepReportData) -> str:
    """Return the sweep report as one HTML page (deterministic bytes)."""
    facts = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in data.facts.items())
    kind = "Walk-forward" if data.windows else "Parameter sweep"
    body = [
        f'<header class="top"><div><h1>{esc(data.title)}</h1><div class="sub">{esc(kind)} · ranked by '
        f'{esc(data.metric)}</div></div><div class="brand">quantfleet</div></header>',
        f'<section class="card"><dl class="facts">{facts}</dl></section>',
    ]
    charts: list[Chart] = []
    wf_html, wf_charts = _walkforward_parts(data)
    heat = _heatmap_chart(data)
    grid: list[str] = []
    for chart in [*wf_charts, *([heat] if heat else [])]:
        charts.append(chart)
        grid.append(chart_card(chart))
    if wf_html:
        grid.append(wf_html)
    grid.append(_leaderboard_table(data))
    body.append(f'<div class="grid">{"".join(grid)}</div>')
    return page(f"{data.title} · {kind.lower()}", "\n".join(body), charts)


def write_sweep_report(data: SweepReportData, path: Path) -> Path:
    """Write the report to ``path`` and return it."""
    path.write_text(render_sweep_report(data), encoding="utf-8")
    return path
