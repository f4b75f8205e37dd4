"""The compare page: several runs' equity curves overlaid and their metrics side by side.

Equity curves are rebased to 1 at each run's first bar so runs with
different capital compare; the best value of each metric row is
highlighted, by the direction in :mod:`quantfleet.analytics.display`.
The page is self-contained and deterministic like the tearsheet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.analytics import charts as ch
from quantfleet.analytics.display import best_indices, format_value, metric_rows, section_order
from quantfleet.analytics.drawdowns import underwater
from quantfleet.analytics.page import Cell, cell_html, chart_card, esc, page
from quantfleet.analytics.series import to_ms
from quantfleet.analytics.tearsheet import write_atomic

__all__ = ["CompareRun", "render_compare", "write_compare"]

_MAX_POINTS = 5000


@dataclass(frozen=True)
class CompareRun:
    """One run to compare: a display name, its manifest, its flat metrics and its equity per bar."""

    name: str
    manifest: Mapping[str, Any]
    metrics: Mapping[str, Any]
    ts: np.ndarray
    equity: np.ndarray


def _rebased(equity: np.ndarray) -> np.ndarray:
    e = np.asarray(equity, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(e) & (e > 0))
    return e / e[valid[0]] if len(valid) else e


def _intraday(runs: Sequence[CompareRun]) -> bool:
    frequencies = [str(r.manifest.get("frequency") or "1d") for r in runs]
    return any(not f.endswith(("d", "w", "mo", "M", "y")) for f in frequencies)


def _swatch(i: int) -> str:
    color = ch.PALETTE[i % len(ch.PALETTE)]
    return f'<span class="swatch" style="background:{color}"></span>'


def _runs_table(runs: Sequence[CompareRun]) -> str:
    head = "".join(
        f"<th class='txt'>{h}</th>"
        for h in ("Run", "Strategy", "Parameters", "Period", "Snapshot", "Code hash", "Engine")
    )
    rows = []
    for i, run in enumerate(runs):
        m = run.manifest
        strategy = m.get("strategy") or {}
        sha = str(strategy.get("sha256") or "n/a")
        params = json.dumps(m.get("parameters") or {}, sort_keys=True, default=str)
        cells = [
            f"<td class='txt'>{_swatch(i)}{esc(run.name)}</td>",
            cell_html(Cell(str(strategy.get("name") or "n/a"), css="txt")),
            f"<td class='txt'><code>{esc(params)}</code></td>",
            cell_html(Cell(f"{m.get('first_bar', 'n/a')} → {m.get('last_bar', 'n/a')} ({m.get('frequency', 'n/a')})")),
            cell_html(Cell(str(m.get("snapshot", "n/a")))),
            f"<td class='txt' title='{esc(sha)}'><code>{esc(sha[:12])}</code></td>",
            cell_html(Cell(str(m.get("engine_version", "n/a")))),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<section class="card wide" id="qf-runs"><h2>Runs</h2><div class="scroll-x">'
        f"<table class='qf-runs'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _metrics_table(runs: Sequence[CompareRun]) -> str:
    head = "<th>Metric</th>" + "".join(f"<th>{_swatch(i)}{esc(r.name)}</th>" for i, r in enumerate(runs))
    body = []
    # A key no run reports (an older engine's metrics) would only be a row of n/a.
    reported = [s for s in metric_rows(*(r.metrics for r in runs)) if any(s.key in r.metrics for r in runs)]
    for section, specs in section_order(reported):
        body.append(f'<tr class="section"><th colspan="{len(runs) + 1}">{esc(section)}</th></tr>')
        for spec in specs:
            values = [r.metrics.get(spec.key) for r in runs]
            best = best_indices(values, spec.better)
            cells = [cell_html(spec.label)]
            for i, value in enumerate(values):
                text = format_value(value, spec.fmt)
                css = "best" if i in best else ("na" if text == "n/a" else "")
                cells.append(cell_html(Cell(text, css=css)))
            body.append(f'<tr data-key="{esc(spec.key)}">{"".join(cells)}</tr>')
    return (
        '<section class="card wide" id="qf-compare-metrics"><h2>Metrics</h2>'
        '<p class="note">Best value per row highlighted (higher return and ratios, lower volatility, '
        "drawdowns and costs closer to zero).</p>"
        f'<div class="scroll-x"><table class="qf-compare"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></section>"
    )


def render_compare(runs: Sequence[CompareRun]) -> str:
    """Return the compare page HTML for ``runs`` (at least one), in the order given."""
    if not runs:
        raise ValueError("render_compare needs at least one run; pass the runs to compare")
    intraday = _intraday(runs)
    lines = [(r.name, to_ms(np.asarray(r.ts)), _rebased(r.equity)) for r in runs]
    depths = [(r.name, to_ms(np.asarray(r.ts)), underwater(np.asarray(r.equity, dtype=np.float64))) for r in runs]
    charts = [
        ch.overlay_chart(
            lines,
            chart_id="qf-compare-equity",
            title="Equity (rebased to 1)",
            y_title="Growth of 1",
            y_format=".2f",
            log_toggle=True,
            max_points=_MAX_POINTS,
            intraday=intraday,
        ),
        ch.overlay_chart(
            depths,
            chart_id="qf-compare-underwater",
            title="Underwater (drawdown)",
            y_title="Below peak",
            y_format=".0%",
            log_toggle=False,
            max_points=_MAX_POINTS,
            intraday=intraday,
        ),
    ]
    names = ", ".join(r.name for r in runs)
    body = "\n".join(
        [
            f'<header class="top"><div><h1>Compare {len(runs)} runs</h1><div class="sub">{esc(names)}</div></div>'
            '<div class="brand">quantfleet compare</div></header>',
            '<div class="grid">',
            _runs_table(runs),
            *(chart_card(c) for c in charts),
            _metrics_table(runs),
            "</div>",
        ]
    )
    return page(f"Compare: {names}", body, charts)


def write_compare(runs: Sequence[CompareRun], path: Path) -> Path:
    """Render the compare page and write it atomically to ``path``."""
    return write_atomic(render_compare(runs), path)
