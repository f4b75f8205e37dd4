"""The HTML shell shared by the tearsheet and the compare page.

One self-contained file: the CSS, a small table-sorting script and
plotly.js are inlined (plotly.js once per page, whatever the number of
charts), so the page opens offline. Output is deterministic: chart ids are
fixed and nothing reads the clock. Every piece of text from a run goes
through :func:`html.escape`; JSON placed inside ``<script>`` has ``</``
escaped so a symbol or strategy name cannot close the tag.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import plotly.io as pio
import plotly.offline

from quantfleet.analytics.charts import FONT, Chart

__all__ = ["Cell", "cell_html", "chart_card", "charts_script", "esc", "page", "table"]

_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}

_CSS = """
:root { --ink:#243447; --muted:#6b7785; --line:#e3e8ee; --bg:#f4f6f9; --card:#fff; --accent:#1f5fbf;
  --gain:#1e8e3e; --loss:#c0392b; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font:14px/1.45 FONT; }
main { max-width:1280px; margin:0 auto; padding:24px 24px 48px; }
header.top { display:flex; justify-content:space-between; align-items:flex-end; gap:16px; margin-bottom:16px; }
h1 { font-size:24px; margin:0; font-weight:650; letter-spacing:-0.01em; }
h2 { font-size:15px; margin:0 0 10px; font-weight:620; }
h3 { font-size:12px; margin:0 0 6px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); }
.sub { color:var(--muted); margin-top:4px; }
.brand { color:var(--muted); font-size:12px; text-align:right; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 18px;
  box-shadow:0 1px 2px rgba(16,24,40,.04); min-width:0; }
.grid { display:grid; grid-template-columns:repeat(2, minmax(0,1fr)); gap:16px; margin-top:16px; }
.wide { grid-column:1 / -1; }
dl.facts { display:grid; grid-template-columns:repeat(auto-fill, minmax(260px,1fr)); gap:10px 24px; margin:0; }
dl.facts div { min-width:0; }
dl.facts dt { font-size:11px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); }
dl.facts dd { margin:2px 0 0; overflow-wrap:anywhere; }
code, .mono { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12px; }
.kpis { display:grid; grid-template-columns:repeat(auto-fit, minmax(150px,1fr)); gap:12px; margin-top:16px; }
.kpi { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.kpi .v { font-size:22px; font-weight:620; font-variant-numeric:tabular-nums; }
.kpi .l { font-size:11px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); }
.sections { columns:3 300px; column-gap:24px; }
.sections section { break-inside:avoid; margin-bottom:14px; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th:first-child, td:first-child { text-align:left; }
th { font-size:11px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); font-weight:600; }
td.txt, th.txt { text-align:left; }
tbody tr:hover { background:#f7f9fc; }
table.qf-metrics { table-layout:fixed; }
table.qf-metrics td:first-child, table.qf-metrics th:first-child { width:50%; white-space:normal; }
table.qf-metrics th { white-space:normal; vertical-align:bottom; }
table.qf-compare thead th { text-transform:none; letter-spacing:0; font-size:12px; color:var(--ink); }
table.qf-runs td, table.qf-runs th { text-align:left; }
tr.section th { text-align:left; background:#fafbfc; color:var(--ink); padding-top:10px; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; vertical-align:baseline; }
.scroll-x { overflow-x:auto; }
td.best { background:#e6f4ea; color:#14532d; font-weight:620; }
td.na { color:#9aa4b1; }
[title] { cursor:help; }
td[title] { text-decoration:underline dotted #9aa4b1; }
.pos { color:var(--gain); } .neg { color:var(--loss); }
.scroll { max-height:560px; overflow:auto; border:1px solid var(--line); border-radius:6px; }
.scroll thead th { position:sticky; top:0; background:#fafbfc; z-index:1; }
table.sortable th { cursor:pointer; user-select:none; }
table.sortable th[aria-sort=ascending]::after { content:" ▲"; }
table.sortable th[aria-sort=descending]::after { content:" ▼"; }
.note { color:var(--muted); font-size:12px; margin:8px 0 0; }
.chart { width:100%; min-height:200px; }
details summary { cursor:pointer; color:var(--accent); }
footer { color:var(--muted); font-size:12px; margin-top:24px; text-align:center; }
@media (max-width: 900px) { .grid { grid-template-columns:minmax(0,1fr); } }
""".replace("FONT", FONT)

# Click a header to sort by it; numbers sort by their data-v attribute, text by its content.
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var numeric = th.dataset.type === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col], c;
        if (numeric) {
          var p = parseFloat(x.dataset.v), q = parseFloat(y.dataset.v);
          p = isNaN(p) ? -Infinity : p; q = isNaN(q) ? -Infinity : q;
          c = p - q;
        } else {
          c = (x.dataset.v || x.textContent).localeCompare(y.dataset.v || y.textContent);
        }
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def esc(value: object) -> str:
    """Return ``value`` as HTML-escaped text."""
    return html.escape(str(value), quote=True)


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell: display text, an optional sort key, tooltip and CSS class."""

    text: str
    sort: float | str | None = None
    title: str = ""
    css: str = ""


def cell_html(cell: Cell | str, tag: str = "td") -> str:
    """Return one ``<td>`` (or ``tag``) for ``cell``; plain strings are escaped text."""
    if isinstance(cell, str):
        return f"<{tag}>{esc(cell)}</{tag}>"
    attrs = ""
    if cell.css:
        attrs += f' class="{esc(cell.css)}"'
    if cell.sort is not None:
        attrs += f' data-v="{esc(cell.sort)}"'
    if cell.title:
        attrs += f' title="{esc(cell.title)}"'
    return f"<{tag}{attrs}>{esc(cell.text)}</{tag}>"


def table(
    headers: Sequence[Cell | str],
    rows: Iterable[Sequence[Cell | str]],
    *,
    css: str = "",
    table_id: str = "",
) -> str:
    """Return an HTML table; give a header ``Cell(sort="num")`` to sort that column numerically."""
    head = []
    for h in headers:
        if isinstance(h, Cell) and h.sort == "num":
            head.append(f'<th data-type="num">{esc(h.text)}</th>')
        elif isinstance(h, Cell):
            head.append(f'<th class="{esc(h.css)}">{esc(h.text)}</th>')
        else:
            head.append(f"<th>{esc(h)}</th>")
    body = "\n".join("<tr>" + "".join(cell_html(c) for c in row) + "</tr>" for row in rows)
    ident = f' id="{esc(table_id)}"' if table_id else ""
    klass = f' class="{esc(css)}"' if css else ""
    return f"<table{ident}{klass}><thead><tr>{''.join(head)}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"


def chart_card(chart: Chart) -> str:
    """Return the card holding one chart's div (filled in by :func:`charts_script`)."""
    klass = "card wide" if chart.wide else "card"
    note = f'<p class="note">{esc(chart.note)}</p>' if chart.note else ""
    return (
        f'<section class="{klass}"><h2>{esc(chart.title)}</h2>'
        f'<div id="{esc(chart.id)}" class="chart qf-chart" data-traces="{chart.traces}"></div>{note}</section>'
    )


def _script_json(text: str) -> str:
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def charts_script(charts: Sequence[Chart]) -> str:
    """Return the script that draws every chart with Plotly.newPlot."""
    config = json.dumps(_CONFIG, sort_keys=True)
    specs = []
    for chart in charts:
        fig = pio.to_json(chart.figure, validate=False, pretty=False, engine="json")
        specs.append(f'{{"id":{json.dumps(chart.id)},"fig":{fig}}}')
    body = ",\n".join(specs)
    return (
        "<script>\n(function () {\n"
        f"var config = {config};\nvar figs = [\n{_script_json(body)}\n];\n"
        "figs.forEach(function (f) { Plotly.newPlot(f.id, f.fig.data, f.fig.layout, config); });\n"
        "})();\n</script>"
    )


@functools.cache
def _plotly_js() -> str:
    return str(plotly.offline.get_plotlyjs())


def page(title: str, body: str, charts: Sequence[Chart]) -> str:
    """Return the whole HTML document: CSS, plotly.js once, the body, and the chart script."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n"
        f'<script type="text/javascript">{_plotly_js()}</script>\n'
        "</head>\n<body>\n<main>\n"
        f"{body}\n</main>\n"
        f"{charts_script(charts)}\n<script>{_SORT_JS}</script>\n</body>\n</html>\n"
    )
