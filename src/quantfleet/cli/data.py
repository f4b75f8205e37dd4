"""``quantfleet data``: ingest, list, tag and inspect versioned market data."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from quantfleet.cli.common import state
from quantfleet.core.errors import DataError
from quantfleet.core.types import Adjustment, Frequency
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.base import VendorData
from quantfleet.data.ingest.files import FileLayout, read_bar_files
from quantfleet.data.ingest.synthetic import DEMO_SYMBOLS, synthetic_bars

__all__ = ["DEMO_SYMBOLS", "app", "ingest_vendor_data", "print_catalog", "print_snapshots", "synthetic"]

app = typer.Typer(help="Ingest, list, tag and inspect versioned market data.", no_args_is_help=True)
ingest_app = typer.Typer(help="Write new bars (each ingest is a new snapshot).", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
out = Console()
err = Console(stderr=True)

FrequencyOpt = typer.Option("1d", "--frequency", "-f", help="Bar frequency: 1m, 5m, 15m, 30m, 1h or 1d.")
CalendarOpt = typer.Option(None, "--calendar", help="Exchange calendar to check sessions against (default: settings).")
OffSessionOpt = typer.Option(
    "error", "--off-session", help="Bars outside sessions: error (refuse), drop or keep (both reported)."
)
ModeOpt = typer.Option("append", "--mode", help="append (refuse overlaps) or upsert (replace bars with the same time).")
SnapshotOpt = typer.Option(None, "--snapshot", "-s", help="Snapshot id or tag (default: the newest).")
SymbolsArg = typer.Argument(..., help="Comma-separated symbols, e.g. AAPL,MSFT.")
StartOpt = typer.Option(..., "--start", help="First date (YYYY-MM-DD).")
EndOpt = typer.Option(..., "--end", help="Last date (YYYY-MM-DD).")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _symbols(text: str) -> list[str]:
    names = [s.strip().upper() for s in text.replace(" ", ",").split(",") if s.strip()]
    if not names:
        raise DataError("no symbols given; pass them comma-separated, e.g. --symbols AAPL,MSFT")
    return names


def _report(store: MarketDataStore, result: object) -> None:
    from quantfleet.data.store import IngestResult

    assert isinstance(result, IngestResult)
    notes = result.notes
    out.print(
        f"[green]snapshot {result.snapshot}[/green]: wrote {result.rows:,} bars for "
        f"{len(result.symbols)} symbol(s) to {store.url}"
    )
    if notes.dropped_off_session:
        err.print(
            f"[yellow]dropped {notes.dropped_off_session} bar(s) outside sessions[/yellow] "
            f"(e.g. {', '.join(notes.examples)})"
        )
    if notes.kept_off_session:
        err.print(
            f"[yellow]kept {notes.kept_off_session} bar(s) outside sessions[/yellow] (e.g. {', '.join(notes.examples)})"
        )


def _ingest_stream(
    store: MarketDataStore,
    tables: Iterator[pa.Table],
    *,
    total: int,
    label: str,
    frequency: str,
    calendar: str | None,
    off_session: str,
    mode: str,
    source: str,
) -> None:
    settings = state.settings
    cal = calendar or (settings.calendar if settings else "XNYS")
    with _progress() as progress:
        task = progress.add_task(label, total=total, rows=0)

        def advance(rows: int) -> None:
            progress.update(task, advance=1, rows=progress.tasks[task].fields["rows"] + rows)

        result = store.ingest_bars(
            tables,
            frequency=frequency,
            mode=mode,
            calendar=cal,
            off_session=off_session,
            source=source,
            progress=advance,
        )
    _report(store, result)


@ingest_app.command("files")
def ingest_files(
    paths: list[Path] = typer.Argument(
        ..., help="CSV or Parquet files: one per symbol, or long files with a symbol column."
    ),
    frequency: str = FrequencyOpt,
    tz: str = typer.Option("UTC", "--tz", help="Time zone of timestamps that carry none, e.g. America/New_York."),
    column: list[str] = typer.Option([], "--column", help="Map a column: OURS=THEIRS, e.g. --column ts=Datetime."),
    symbol: str | None = typer.Option(
        None, "--symbol", help="Symbol of a single one-symbol file (default: file name)."
    ),
    delimiter: str = typer.Option(",", "--delimiter", help="CSV field delimiter."),
    calendar: str | None = CalendarOpt,
    off_session: str = OffSessionOpt,
    mode: str = ModeOpt,
) -> None:
    """Ingest bars from CSV or Parquet files as one new snapshot."""
    mapping = {}
    for item in column:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours or not theirs:
            raise DataError(f"--column {item!r}: write OURS=THEIRS, e.g. --column ts=Date")
        mapping[ours.strip()] = theirs.strip()
    layout = FileLayout(columns=mapping, tz=tz, symbol=symbol, delimiter=delimiter)
    tables = read_bar_files(paths, frequency=frequency, layout=layout)
    _ingest_stream(
        state.store(),
        tables,
        total=len(paths),
        label="files",
        frequency=frequency,
        calendar=calendar,
        off_session=off_session,
        mode=mode,
        source=f"files:{','.join(p.name for p in paths[:5])}",
    )


def synthetic(
    symbols: Sequence[str], *, start: date, end: date, frequency: str = "1d", seed: int = 42, calendar: str = "XNYS"
) -> VendorData:
    """Return synthetic data for ``symbols`` (one call per symbol keeps progress honest)."""
    return synthetic_bars(symbols, start=start, end=end, frequency=frequency, seed=seed, calendar=calendar)


def ingest_vendor_data(
    store: MarketDataStore,
    source: str,
    fetch: Callable[[list[str]], VendorData],
    *,
    symbols: list[str],
    frequency: str,
    calendar: str | None,
    off_session: str = "error",
    mode: str = "append",
) -> None:
    """Fetch ``symbols`` one by one with a progress bar, then write bars, actions and instruments."""
    fetched: list[VendorData] = []

    def tables() -> Iterator[pa.Table]:
        for name in symbols:
            data = fetch([name])
            fetched.append(data)
            yield data.bars

    _ingest_stream(
        store,
        tables(),
        total=len(symbols),
        label=source,
        frequency=frequency,
        calendar=calendar,
        off_session=off_session,
        mode=mode,
        source=f"{source}:{','.join(symbols[:5])}",
    )
    actions = pa.concat_tables([d.actions for d in fetched]) if fetched else None
    if actions is not None and actions.num_rows:
        sid = store.ingest_corporate_actions(actions, source=source)
        out.print(f"[green]snapshot {sid}[/green]: {actions.num_rows} corporate action(s)")
    instruments = [d.instruments for d in fetched if d.instruments is not None]
    if instruments:
        sid = store.ingest_instruments(pa.concat_tables(instruments), source=source)
        out.print(f"[green]snapshot {sid}[/green]: {sum(t.num_rows for t in instruments)} instrument(s)")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DataError(f"cannot read {text!r} as a date; use YYYY-MM-DD") from None


@ingest_app.command("synthetic")
def ingest_synthetic(
    symbols: str = typer.Option(",".join(DEMO_SYMBOLS), "--symbols", help="Comma-separated symbols."),
    start: str = typer.Option("2015-01-01", "--start", help="First date (YYYY-MM-DD)."),
    end: str = typer.Option("2024-12-31", "--end", help="Last date (YYYY-MM-DD)."),
    frequency: str = FrequencyOpt,
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same bars."),
    calendar: str = typer.Option("XNYS", "--calendar", help="Exchange calendar whose sessions the bars follow."),
    mode: str = ModeOpt,
) -> None:
    """Ingest deterministic random-walk bars (with splits and dividends) for demos and tests."""
    first, last = _date(start), _date(end)
    ingest_vendor_data(
        state.store(),
        "synthetic",
        lambda names: synthetic(names, start=first, end=last, frequency=frequency, seed=seed, calendar=calendar),
        symbols=_symbols(symbols),
        frequency=frequency,
        calendar=calendar,
        mode=mode,
    )


@ingest_app.command("yahoo")
def ingest_yahoo(
    symbols: str = SymbolsArg,
    start: str = StartOpt,
    end: str = EndOpt,
    frequency: str = FrequencyOpt,
    calendar: str | None = CalendarOpt,
    off_session: str = OffSessionOpt,
    mode: str = ModeOpt,
) -> None:
    """Ingest raw bars, splits and dividends from Yahoo Finance (yfinance)."""
    from quantfleet.data.ingest.yahoo import fetch_yahoo

    first, last, freq = _date(start), _date(end), Frequency.parse(frequency)
    ingest_vendor_data(
        state.store(),
        "yahoo",
        lambda names: fetch_yahoo(names, start=first, end=last, frequency=freq),
        symbols=_symbols(symbols),
        frequency=frequency,
        calendar=calendar,
        off_session=off_session,
        mode=mode,
    )


@ingest_app.command("alpaca")
def ingest_alpaca(
    symbols: str = SymbolsArg,
    start: str = StartOpt,
    end: str = EndOpt,
    frequency: str = FrequencyOpt,
    calendar: str | None = CalendarOpt,
    off_session: str = OffSessionOpt,
    mode: str = ModeOpt,
) -> None:
    """Ingest raw bars from Alpaca's market-data API (keys from APCA_API_KEY_ID / APCA_API_SECRET_KEY)."""
    from quantfleet.data.ingest.alpaca import fetch_alpaca

    key, secret = os.environ.get("APCA_API_KEY_ID"), os.environ.get("APCA_API_SECRET_KEY")
    first, last, freq = _date(start), _date(end), Frequency.parse(frequency)
    ingest_vendor_data(
        state.store(),
        "alpaca",
        lambda names: fetch_alpaca(names, start=first, end=last, frequency=freq, api_key=key, secret_key=secret),
        symbols=_symbols(symbols),
        frequency=frequency,
        calendar=calendar,
        off_session=off_session,
        mode=mode,
    )


def _read_csv(path: Path) -> pa.Table:
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    try:
        return pacsv.read_csv(path)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from None


@ingest_app.command("actions")
def ingest_actions(
    path: Path = typer.Argument(..., help="CSV with columns symbol, ex_date, kind (split|dividend), value."),
) -> None:
    """Ingest splits and cash dividends (new shares per old share; cash per share)."""
    sid = state.store().ingest_corporate_actions(_read_csv(path), source=f"file:{path.name}")
    out.print(f"[green]snapshot {sid}[/green]: corporate actions from {path}")


@ingest_app.command("instruments")
def ingest_instruments(
    path: Path = typer.Argument(
        ..., help="CSV with symbol and any of name, exchange, asset_class, currency, first_date, last_date."
    ),
) -> None:
    """Ingest security-master rows (upserted by symbol)."""
    sid = state.store().ingest_instruments(_read_csv(path), source=f"file:{path.name}")
    out.print(f"[green]snapshot {sid}[/green]: instruments from {path}")


def print_catalog(store: MarketDataStore, snapshot: str | None) -> None:
    """Print symbols, ranges and row counts of a snapshot."""
    sid = store.resolve(snapshot)
    table = Table(title=f"{store.url} · snapshot {sid}")
    for name, justify in [
        ("symbol", "left"),
        ("freq", "left"),
        ("first", "left"),
        ("last", "left"),
        ("rows", "right"),
        ("files", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    fmt = "%Y-%m-%d %H:%M"
    for s in store.catalog(sid):
        f = "%Y-%m-%d" if not s.frequency.is_intraday else fmt
        table.add_row(s.symbol, s.frequency.value, s.first.strftime(f), s.last.strftime(f), f"{s.rows:,}", str(s.files))
    out.print(table)


def print_snapshots(store: MarketDataStore) -> None:
    """Print every snapshot, newest first."""
    table = Table(title=f"snapshots of {store.url}")
    for name in ("id", "created (UTC)", "operation", "source", "rows added", "tags"):
        table.add_column(name, justify="right" if name in ("id", "rows added") else "left")
    for s in store.snapshots():
        table.add_row(
            str(s.id),
            s.created.strftime("%Y-%m-%d %H:%M:%S"),
            s.operation,
            s.source,
            f"{s.rows_added:,}",
            ", ".join(s.tags),
        )
    out.print(table)


@app.command("ls")
def ls(snapshot: str | None = SnapshotOpt) -> None:
    """List symbols, date ranges and row counts in a snapshot."""
    print_catalog(state.store(), snapshot)


@app.command("snapshots")
def snapshots() -> None:
    """List snapshots (table versions), newest first, with their tags."""
    print_snapshots(state.store())


@app.command("tag")
def tag(
    name: str = typer.Argument(..., help="Tag name, e.g. eod-2026-11-20."),
    snapshot: str | None = typer.Argument(None, help="Snapshot id or tag (default: the newest)."),
    force: bool = typer.Option(False, "--force", help="Move an existing tag."),
) -> None:
    """Name a snapshot so jobs can pin it by name."""
    sid = state.store().tag(name, snapshot, force=force)
    out.print(f"tagged snapshot {sid} as [bold]{name}[/bold]")


@app.command("instruments")
def instruments(snapshot: str | None = SnapshotOpt) -> None:
    """List the security master (instruments) of a snapshot."""
    store = state.store()
    rows = store.instruments(snapshot).to_pylist()
    table = Table(title=f"instruments · snapshot {store.resolve(snapshot)}")
    for name in ("symbol", "name", "exchange", "asset_class", "currency", "first_date", "last_date"):
        table.add_column(name)
    for row in rows:
        table.add_row(*("" if row[k] is None else str(row[k]) for k in row))
    out.print(table)


@app.command("show")
def show(
    symbol: str = typer.Argument(..., help="Symbol to show."),
    start: str | None = typer.Option(None, "--start", help="First date or time."),
    end: str | None = typer.Option(None, "--end", help="Last date or time (a date means the whole day)."),
    frequency: str = FrequencyOpt,
    adjustment: Adjustment = typer.Option(Adjustment.RAW, "--adjustment", help="raw, splits or all."),
    snapshot: str | None = SnapshotOpt,
    rows: int = typer.Option(10, "--rows", "-n", help="Rows to show from each end."),
) -> None:
    """Show the first and last bars of a symbol."""
    data = state.store().read_bars(
        symbol, start=start, end=end, frequency=frequency, snapshot=snapshot, adjustment=adjustment
    )
    t = data.table
    table = Table(
        title=f"{symbol.upper()} {data.frequency.value} · snapshot {data.snapshot} · "
        f"{adjustment.value} · {len(data):,} bars"
    )
    for name in ("ts", "open", "high", "low", "close", "volume"):
        table.add_column(name, justify="left" if name == "ts" else "right")
    picks = list(range(min(rows, t.num_rows))) + list(range(max(rows, t.num_rows - rows), t.num_rows))
    for i in picks:
        r = {k: t.column(k)[i].as_py() for k in ("ts", "open", "high", "low", "close", "volume")}
        ts: datetime = r["ts"]
        table.add_row(
            ts.strftime("%Y-%m-%d %H:%M"),
            *(f"{r[k]:,.4f}" for k in ("open", "high", "low", "close")),
            f"{r['volume']:,.0f}",
        )
    out.print(table)


@app.command("delete")
def delete(
    symbols: str = typer.Argument(..., help="Comma-separated symbols."),
    frequency: str = FrequencyOpt,
    start: str | None = typer.Option(None, "--start", help="Delete from this date (default: the first bar)."),
    end: str | None = typer.Option(None, "--end", help="Delete through this date (default: the last bar)."),
) -> None:
    """Delete bars as a new snapshot; earlier snapshots keep them."""
    from quantfleet.data.reader import parse_time

    lo = datetime.fromtimestamp(parse_time(start) / 1e6, tz=UTC) if start else None
    hi = datetime.fromtimestamp(parse_time(end, end=True) / 1e6, tz=UTC) if end else None
    sid = state.store().delete_bars(_symbols(symbols), frequency=frequency, start=lo, end=hi)
    out.print(f"[green]snapshot {sid}[/green]: deleted; earlier snapshots still hold the bars")
