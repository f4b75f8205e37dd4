"""How jobs read on the pages: state colours, durations, parameters and the headline metrics, as table cells."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from quantfleet.analytics.display import best_indices, format_value, metric_rows, spec_for
from quantfleet.client import JobInfo

__all__ = [
    "DEPLOYMENT_COLOURS",
    "KEY_METRICS",
    "STATE_COLOURS",
    "at_text",
    "duration",
    "job_row",
    "metric_text",
    "metrics_rows",
    "params_text",
    "state_style_rules",
    "trigger_text",
]

STATE_COLOURS: Mapping[str, tuple[str, str]] = {
    "queued": ("#5b6470", "#eef1f5"),
    "running": ("#0b57d0", "#e3edfd"),
    "succeeded": ("#146c2e", "#e5f4ea"),
    "failed": ("#b3261e", "#fbe9e7"),
    "timed_out": ("#9a4d00", "#fff0dd"),
    "cancelled": ("#6d4c41", "#f1ebe8"),
    "dead": ("#ffffff", "#7a1f1a"),
}
"""Text and background colour of each state (contrast at least 4.5:1 on both)."""

DEPLOYMENT_COLOURS: Mapping[str, tuple[str, str]] = {
    "active": ("#146c2e", "#e5f4ea"),
    "paused": ("#9a4d00", "#fff0dd"),
    "stopped": ("#5b6470", "#eef1f5"),
}
"""Text and background colour of each deployment status (contrast at least 4.5:1 on both)."""

KEY_METRICS = ("total_return", "sharpe", "max_drawdown")
"""The metrics the jobs table shows; the detail page shows them all."""


def duration(seconds: float | None) -> str:
    """Return seconds as a short human duration: 850 ms, 42 s, 3 m 05 s, 2 h 14 m, 3 d 4 h."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def params_text(params: Mapping[str, Any] | None, *, limit: int = 80) -> str:
    """Return parameters as ``a=1, b=x``, cut at ``limit`` characters."""
    if not params:
        return ""
    text = ", ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def metric_text(metrics: Mapping[str, Any] | None, key: str) -> str:
    """Return one metric formatted as reports show it, or blank when the job has none."""
    if not metrics or metrics.get(key) is None:
        return ""
    return format_value(metrics[key], spec_for(key).fmt)


# A job's end reason when it says no more than its state (a failure of the strategy's own code, say).
_PLAIN_REASONS = {"succeeded": "completed", "failed": "error", "cancelled": "cancelled", "dead": "infrastructure"}


def _state_note(job: JobInfo) -> str:
    """Return what the state cell adds: cancelling while a cancel is pending, else a telling end reason."""
    if job.cancel_requested and not job.terminal:
        return " (cancelling)"
    if job.reason and job.reason != _PLAIN_REASONS.get(job.state):
        return f" ({job.reason.replace('_', ' ')})"  # failed (memory), timed_out (cpu), cancelled (withdrawn)
    return ""


def job_row(job: JobInfo, *, now: datetime) -> dict[str, Any]:
    """Return the jobs table's row of a job: ``now`` gives the running ones their time so far."""
    spec = job.spec or {}
    started_wait = _between(job.submitted_at, job.started_at or (None if job.terminal else now))
    ran = _between(job.started_at, job.finished_at or (now if job.state == "running" else None))
    row: dict[str, Any] = {
        "id": job.id,
        "short": job.id[:8],
        "link": f"[{job.id[:8]}](/jobs/{job.id})",
        "state": job.state + _state_note(job),
        "state_key": job.state,
        "kind": job.kind,
        "strategy": job.strategy,
        "owner": job.owner,
        "params": params_text(spec.get("params")),
        "submitted": job.submitted_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        "to_start": duration(started_wait),
        "duration": duration(ran),
        "error": (job.error or "")[:120],
    }
    for key in KEY_METRICS:
        row[key] = metric_text(job.metrics, key)
    return row


def state_style_rules(column: str = "state") -> list[dict[str, Any]]:
    """Return DataTable conditional styles colouring the ``column`` cell by the row's state."""
    return [
        {
            "if": {"filter_query": f'{{state_key}} = "{state}"', "column_id": column},
            "color": fg,
            "backgroundColor": bg,
            "fontWeight": 600,
        }
        for state, (fg, bg) in STATE_COLOURS.items()
    ]


def metrics_rows(metrics: Sequence[Mapping[str, Any] | None], labels: Sequence[str]) -> list[dict[str, Any]]:
    """Return one row per metric key any of ``metrics`` holds: its label, then each run's formatted value."""
    present = {k for m in metrics if m for k, v in m.items() if v is not None and not isinstance(v, dict | list)}
    rows = []
    for spec in metric_rows(*metrics):
        if spec.key not in present:
            continue
        values = [(m or {}).get(spec.key) for m in metrics]
        best = best_indices(values, spec.better) if len(metrics) > 1 else set()
        row: dict[str, Any] = {"metric": spec.label, "key": spec.key, "section": spec.section}
        for i, (label, value) in enumerate(zip(labels, values, strict=True)):
            row[label] = format_value(value, spec.fmt) + (" ★" if i in best else "")
        rows.append(row)
    return rows


def _parsed(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def at_text(value: datetime | str | None, *, now: datetime) -> str:
    """Return a UTC time to the minute with how far it is from ``now``: ``2026-01-05 14:30 UTC (in 3 h 05 m)``."""
    at = _parsed(value)
    if at is None:
        return ""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    seconds = (at - now).total_seconds()
    when = duration(abs(seconds))
    relative = "now" if abs(seconds) < 1 else f"in {when}" if seconds > 0 else f"{when} ago"
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({relative})"


def trigger_text(trigger: Mapping[str, Any] | None) -> str:
    """Return a deployment's trigger as a line: ``cron */15 9-16 * * MON-FRI on XNYS sessions`` or ``each bar``."""
    if not trigger:
        return ""
    if trigger.get("kind") == "bars":
        return "each bar (MQTT)"
    if trigger.get("kind") == "cron":
        where = f"on {trigger.get('calendar', 'XNYS')} sessions" if trigger.get("sessions_only", True) else "any day"
        half = f", half days: {trigger['half_days']}" if trigger.get("half_days") not in (None, "skip") else ""
        return f"cron {trigger.get('cron', '')} {where}{half}"
    return json.dumps(dict(trigger), sort_keys=True)
