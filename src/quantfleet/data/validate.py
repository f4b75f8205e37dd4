"""Rules every bar must keep before it is written, with messages that name the fix.

:func:`coerce_bars` brings a table to :data:`~quantfleet.data.schema.BARS_SCHEMA`;
:func:`check_bars` finds every broken rule at once and raises one
:class:`~quantfleet.core.errors.InvalidBarsError` listing them, so a user fixes
a file in one pass rather than one error at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantfleet.core.errors import InvalidBarsError
from quantfleet.core.types import Frequency
from quantfleet.data.calendars import off_session_mask
from quantfleet.data.schema import BARS_SCHEMA, PRICE_FIELDS, TS_TYPE, VALUE_FIELDS

__all__ = ["OffSession", "ValidationNotes", "check_bars", "coerce_bars", "validate_symbol"]

# Symbols become partition folder names, so no path separators.
SYMBOL_RE = re.compile(r"^[A-Z0-9^][A-Z0-9.\-_^=]{0,31}$")
_EXAMPLES = 3
_LOOSE_SCHEMA = pa.schema([pa.field(f.name, f.type) for f in BARS_SCHEMA])


class OffSession(StrEnum):
    """What to do with bars outside the exchange calendar's sessions."""

    ERROR = "error"  # refuse the ingest, listing them
    DROP = "drop"  # drop them and report how many
    KEEP = "keep"  # keep them and report how many


@dataclass
class ValidationNotes:
    """What validation changed or noticed without refusing the bars."""

    dropped_off_session: int = 0
    kept_off_session: int = 0
    examples: list[str] = field(default_factory=list)


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` normalised to upper case, or raise naming the rule it breaks."""
    norm = symbol.strip().upper()
    if not SYMBOL_RE.match(norm):
        raise InvalidBarsError(
            f"invalid symbol {symbol!r}: use 1-32 letters, digits or . - _ ^ = "
            "(for example AAPL, BRK.B, ^GSPC, BTC-USD)"
        )
    return norm


def coerce_bars(table: pa.Table, *, source: str = "input") -> pa.Table:
    """Return ``table`` cast to the bars schema; raise naming missing or unparsable columns."""
    missing = [f.name for f in BARS_SCHEMA if f.name not in table.column_names]
    if missing:
        raise InvalidBarsError(
            f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(table.column_names)}. "
            "Map your columns with --column NAME=YOURS (for example --column ts=Date)."
        )
    columns = []
    for fld in BARS_SCHEMA:
        col = table.column(fld.name)
        try:
            if fld.name == "ts":
                col = _to_utc(col)
            elif fld.name == "symbol":
                col = pc.utf8_upper(pc.utf8_trim_whitespace(col.cast(pa.string())))
            else:
                col = col.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidBarsError(
                f"{source}: column {fld.name!r} cannot be read as {fld.type}: {exc}. "
                "Fix the values or map a different column to it."
            ) from None
        columns.append(col)
    # Nullability is checked (with examples) by check_bars, not by Arrow.
    return pa.Table.from_arrays(columns, schema=_LOOSE_SCHEMA)


def _to_utc(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(col.type):
        if col.type.tz is None:
            raise InvalidBarsError(
                "timestamps have no time zone; say which one they are in with --tz "
                "(for example --tz America/New_York, or --tz UTC)"
            )
        return col.cast(TS_TYPE)
    if pa.types.is_date(col.type):
        return col.cast(pa.timestamp("us")).cast(TS_TYPE)
    raise InvalidBarsError(f"timestamps must be a timestamp or date column, not {col.type}")


def _examples(table: pa.Table, mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)[:_EXAMPLES]
    sym = table.column("symbol").take(pa.array(idx)).to_pylist()
    ts = table.column("ts").take(pa.array(idx)).to_pylist()
    shown = ", ".join(f"{s} {t.isoformat() if t is not None else 'null'}" for s, t in zip(sym, ts, strict=True))
    more = f" and {int(mask.sum()) - len(idx)} more" if mask.sum() > len(idx) else ""
    return shown + more


def check_bars(
    table: pa.Table,
    *,
    frequency: Frequency,
    calendar: str,
    off_session: OffSession = OffSession.ERROR,
    source: str = "input",
) -> tuple[pa.Table, ValidationNotes]:
    """Return ``table`` sorted by symbol and time once every rule holds.

    Raise :class:`InvalidBarsError` listing every broken rule: nulls, prices
    that are not positive, negative volume, high below low or below the
    open/close, duplicate timestamps, timestamps off the bar grid, and (with
    ``off_session="error"``) bars outside the calendar's sessions.
    """
    notes = ValidationNotes()
    problems: list[str] = []
    n = table.num_rows
    for name in table.column_names:
        nulls = table.column(name).null_count
        if nulls:
            mask = np.asarray(table.column(name).is_null().to_numpy(zero_copy_only=False))
            problems.append(f"{nulls} row(s) have no {name} (e.g. {_examples(table, mask)})")
    if problems:
        _raise(problems, source)
    for symbol in pc.unique(table.column("symbol")).to_pylist():
        if not SYMBOL_RE.match(symbol):
            problems.append(f"invalid symbol {symbol!r} (use letters, digits and . - _ ^ =)")
    v = {name: table.column(name).to_numpy() for name in VALUE_FIELDS}
    prices = np.column_stack([v[name] for name in PRICE_FIELDS]) if n else np.empty((0, 4))
    bad = np.asarray(~np.isfinite(prices).all(axis=1) | (prices <= 0).any(axis=1))
    if bad.any():
        problems.append(
            f"{int(bad.sum())} bar(s) have a negative, zero or non-finite price (e.g. {_examples(table, bad)})"
        )
    bad = ~np.isfinite(v["volume"]) | (v["volume"] < 0)
    if bad.any():
        problems.append(f"{int(bad.sum())} bar(s) have a negative or non-finite volume (e.g. {_examples(table, bad)})")
    bad = v["high"] < v["low"]
    if bad.any():
        problems.append(f"{int(bad.sum())} bar(s) have high < low (e.g. {_examples(table, bad)})")
    bad = (v["high"] < np.maximum(v["open"], v["close"])) | (v["low"] > np.minimum(v["open"], v["close"]))
    bad &= ~(v["high"] < v["low"])
    if bad.any():
        problems.append(
            f"{int(bad.sum())} bar(s) have open or close outside the high-low range (e.g. {_examples(table, bad)})"
        )
    table = table.sort_by([("symbol", "ascending"), ("ts", "ascending")])
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    sym_codes = pc.dictionary_encode(table.column("symbol")).combine_chunks().indices.to_numpy()
    dup = np.zeros(n, dtype=bool)
    if n > 1:
        dup[1:] = (ts[1:] == ts[:-1]) & (sym_codes[1:] == sym_codes[:-1])
    if dup.any():
        problems.append(
            f"{int(dup.sum())} duplicate timestamp(s) (e.g. {_examples(table, dup)}); keep one bar per symbol and time"
        )
    step = int(frequency.step.total_seconds() * 1_000_000)
    off_grid = (ts % step) != 0
    if off_grid.any():
        what = "midnight UTC of the session date" if not frequency.is_intraday else f"a multiple of {frequency.value}"
        problems.append(
            f"{int(off_grid.sum())} timestamp(s) are not on the {frequency.value} grid (must be {what}; "
            f"e.g. {_examples(table, off_grid)}); check --frequency and --tz"
        )
    if problems:
        _raise(problems, source)
    return _sessions(
        table, ts, frequency=frequency, calendar=calendar, off_session=off_session, source=source, notes=notes
    )


def _sessions(
    table: pa.Table,
    ts: np.ndarray,
    *,
    frequency: Frequency,
    calendar: str,
    off_session: OffSession,
    source: str,
    notes: ValidationNotes,
) -> tuple[pa.Table, ValidationNotes]:
    off = off_session_mask(ts, frequency, calendar)
    if not off.any():
        return table, notes
    count = int(off.sum())
    shown = _examples(table, off)
    if off_session is OffSession.ERROR:
        _raise(
            [
                f"{count} bar(s) fall outside {calendar} sessions (e.g. {shown}). Pass --calendar with the "
                "right exchange (or '24/7'), or --off-session drop / keep to drop or keep them"
            ],
            source,
        )
    notes.examples = shown.split(", ")
    if off_session is OffSession.DROP:
        notes.dropped_off_session = count
        return table.filter(pa.array(~off)), notes
    notes.kept_off_session = count
    return table, notes


def _raise(problems: list[str], source: str) -> None:
    raise InvalidBarsError(
        f"{source}: {len(problems)} problem(s), nothing was written:\n  - " + "\n  - ".join(problems),
        problems=problems,
    )
