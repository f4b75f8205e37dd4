"""Bars from CSV and Parquet files, in the two layouts vendors ship.

- **one file per symbol** (``AAPL.csv``, ``MSFT.csv``): the symbol comes from
  the file name, or from ``symbol=`` for a single file;
- **one long file** with a symbol column.

Columns are found by common names (``Date``, ``timestamp``, ``Open``, ``Vol``,
``ticker``, ...) or mapped explicitly (``columns={"ts": "Datetime"}``).
Timestamps without a zone are read in ``tz`` (default UTC) and stored in UTC;
daily bars keep their local date and are stamped at midnight UTC of it.
Epoch numbers are read as seconds, milliseconds or microseconds by magnitude.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from quantfleet.core.errors import InvalidBarsError
from quantfleet.core.types import Frequency
from quantfleet.data.schema import SOURCE_KEY
from quantfleet.data.validate import validate_symbol

__all__ = ["FileLayout", "read_bar_files"]

ALIASES: dict[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker", "sym", "instrument", "code"),
    "ts": ("ts", "timestamp", "datetime", "date", "time", "date_time", "t"),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "last"),
    "volume": ("volume", "vol", "v", "qty"),
}
_MAX_BAD_ROWS = 5


@dataclass(frozen=True, kw_only=True)
class FileLayout:
    """How to read a set of bar files."""

    columns: Mapping[str, str] = field(default_factory=dict)  # our name -> the file's name
    tz: str = "UTC"
    symbol: str | None = None  # the symbol of a single one-symbol file
    delimiter: str = ","


def _resolve_columns(names: list[str], explicit: Mapping[str, str], source: str) -> dict[str, str]:
    """Return our column name -> the file's column name."""
    unknown = [k for k in explicit if k not in ALIASES]
    if unknown:
        raise InvalidBarsError(
            f"cannot map {', '.join(unknown)}: the bar columns are {', '.join(ALIASES)} (e.g. --column ts=Date)"
        )
    lowered = {n.strip().lower().replace(" ", "_"): n for n in names}
    found: dict[str, str] = {}
    for ours, aliases in ALIASES.items():
        if ours in explicit:
            if explicit[ours] not in names:
                raise InvalidBarsError(
                    f"{source}: no column named {explicit[ours]!r} to use as {ours}; the file has {', '.join(names)}"
                )
            found[ours] = explicit[ours]
            continue
        for alias in aliases:
            if alias in lowered:
                found[ours] = lowered[alias]
                break
    return found


def _read_csv(path: Path, layout: FileLayout) -> pa.Table:
    bad: list[str] = []

    def on_bad_row(row: pacsv.InvalidRow) -> str:
        if len(bad) < _MAX_BAD_ROWS:
            line = f"line {row.number}" if row.number is not None else "a row"
            bad.append(
                f"{line}: expected {row.expected_columns} fields, found {row.actual_columns} ({row.text[:60]!r})"
            )
        else:
            bad.append("")
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            # Single-threaded parsing lets Arrow report line numbers of bad rows.
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=layout.delimiter, invalid_row_handler=on_bad_row),
            # Timestamps are parsed below, where zones and daily dates are handled.
            convert_options=pacsv.ConvertOptions(timestamp_parsers=[], strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        raise InvalidBarsError(f"{path}: not a readable CSV file: {exc}. Fix the file or its --delimiter") from None
    if bad:
        shown = [b for b in bad if b]
        raise InvalidBarsError(
            f"{path}: {len(bad)} malformed row(s), nothing was written: "
            + "; ".join(shown)
            + ". Fix or delete those rows and ingest again",
            problems=shown,
        )
    return table


def _parse_ts(col: pa.ChunkedArray, tz: str, frequency: Frequency, source: str) -> pa.Array:
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        values = col.to_numpy().astype(np.int64)
        magnitude = np.abs(values).max() if len(values) else 0
        unit = "s" if magnitude < 10**11 else "ms" if magnitude < 10**14 else "us"
        stamps = pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True))  # type: ignore[call-overload]
    else:
        text = col.cast(pa.string()).to_pandas()
        try:
            stamps = pd.to_datetime(text, format="ISO8601", utc=False)
        except (ValueError, TypeError):
            try:
                stamps = pd.to_datetime(text, format="mixed", utc=False)
            except (ValueError, TypeError) as exc:
                raise InvalidBarsError(
                    f"{source}: cannot read timestamps ({exc}); use ISO dates like 2024-01-02 or "
                    "2024-01-02 09:30:00, or epoch seconds"
                ) from None
        if getattr(stamps.dt, "tz", None) is None:
            try:
                stamps = stamps.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise")
            except Exception as exc:
                raise InvalidBarsError(f"{source}: cannot place timestamps in time zone {tz!r}: {exc}") from None
        stamps = pd.DatetimeIndex(stamps)
    if not frequency.is_intraday:
        # A daily bar belongs to its local session date; store it at midnight UTC of that date.
        local = stamps.tz_convert(tz) if stamps.tz is not None else stamps
        stamps = pd.DatetimeIndex(local.tz_localize(None).normalize()).tz_localize("UTC")
    else:
        stamps = stamps.tz_convert("UTC")
    return pa.array(stamps.as_unit("us"), pa.timestamp("us", tz="UTC"))


def _to_bars(table: pa.Table, path: Path, layout: FileLayout, frequency: Frequency, multi: bool) -> pa.Table:
    source = str(path)
    mapping = _resolve_columns(table.column_names, layout.columns, source)
    missing = [c for c in ("ts", "open", "high", "low", "close", "volume") if c not in mapping]
    if missing:
        raise InvalidBarsError(
            f"{source}: no column for {', '.join(missing)}; the file has {', '.join(table.column_names)}. "
            f"Map them with --column, e.g. --column {missing[0]}=YourName"
        )
    n = table.num_rows
    if "symbol" in mapping:
        symbol_col = pc.utf8_upper(pc.utf8_trim_whitespace(table.column(mapping["symbol"]).cast(pa.string())))
    else:
        if layout.symbol and multi:
            raise InvalidBarsError("--symbol names the symbol of one file; with several files each file's name is used")
        name = validate_symbol(layout.symbol or path.stem)
        symbol_col = pa.chunked_array([pa.array([name] * n, pa.string())])
    columns = {"symbol": symbol_col, "ts": _parse_ts(table.column(mapping["ts"]), layout.tz, frequency, source)}
    for name in ("open", "high", "low", "close", "volume"):
        col = table.column(mapping[name])
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
            raise InvalidBarsError(
                f"{source}: column {mapping[name]!r} ({name}) holds text that is not a number "
                f"(e.g. {_first_non_number(col)!r}); fix those rows"
            )
        columns[name] = col.cast(pa.float64())
    # The store names this file in any validation error.
    return pa.table(columns).replace_schema_metadata({SOURCE_KEY: source})


def _first_non_number(col: pa.ChunkedArray) -> str:
    for value in col.to_pylist():
        if value is None:
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return str(value)
    return "?"


def read_bar_files(
    paths: Sequence[Path | str], *, frequency: Frequency | str, layout: FileLayout | None = None
) -> Iterator[pa.Table]:
    """Yield one bars table per file; raise naming the file, row and fix on bad input."""
    freq = Frequency.parse(frequency)
    layout = layout or FileLayout()
    files = [Path(p) for p in paths]
    for path in files:
        if not path.is_file():
            raise InvalidBarsError(f"{path}: no such file; check the path")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            try:
                table = pq.read_table(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidBarsError(f"{path}: not a readable Parquet file: {exc}") from None
        elif suffix in (".csv", ".txt", ".tsv") or suffix == ".gz":
            table = _read_csv(path, layout)
        else:
            raise InvalidBarsError(f"{path}: unknown file type {suffix!r}; ingest .csv or .parquet files")
        yield _to_bars(table, path, layout, freq, multi=len(files) > 1)
