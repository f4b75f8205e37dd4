"""Parameter-sweep speed: quantfleet's sweep beside vectorbt and a hand-written Numba loop, same data, same strategy.

The strategy is the long-only SMA crossover of examples/sma_crossover_signals.py:
long from a strict cross-up of the fast average over the slow one (a < b on
the bar before, a > b on this one) until a strict cross-down; averages are
pandas' rolling mean (``quantfleet.strategy.sma``); orders fill at the next
bar's open, all in, whole shares (floor(equity / open)), 100,000 cash, no costs.

A. the sweep: fast 5..50 step 1 x slow 20..200 step 5 where fast < slow
   (1,590 combinations) on 100,000 one-minute bars of one symbol, ranked by
   total return; combinations/s and peak memory of
   - quantfleet: ``run_sweep`` through the public API on a store built in a
     temporary folder, ``simulator="vectorized"``, 2 workers (forks of the process that read the data), no
     run folders (``top=0``). Timed from the call to the last evaluation: that
     includes reading the bars from the store and starting the workers, not
     writing the leaderboard and report. A tiny sweep runs first in the same
     process and is reported apart: the first call's compile (or load of the
     Numba cache); a separate process with an empty Numba cache measures a cold
     compile, and the same again a cached one;
   - vectorbt: ``MA.run``, ``ma_crossed_above``/``below`` and
     ``Portfolio.from_signals`` (signals shifted one bar, ``price=open``,
     ``size=inf``, ``size_granularity=1``), in chunks of combinations so it
     fits in memory (``--full-vectorbt``: the whole grid in one call, more than
     10 GB on 100,000 bars);
   - the floor: one ``@njit(cache=True)`` function that simulates one
     combination from precomputed averages (one pandas rolling mean per
     window, included in the timing), called for every combination on one core.
B. one parameter set (10/30) on 500 symbols x 10 years of daily bars, bars/s:
   quantfleet's vectorized engine as 500 one-symbol runs (summed) and as one
   portfolio of 500 symbols sharing its cash (1/500 of equity each), beside one
   vectorbt Portfolio of 500 columns (each column its own 100,000 cash, so it
   matches the 500 one-symbol runs, not the shared-cash portfolio).

Each engine runs in its own process; peak memory is the largest sum of the
resident memory of that process and its children (quantfleet's workers),
sampled every 20 ms, or the process's own max RSS if larger. Best of up to three
runs (fewer when one run takes long). Each engine's best combination, its final
equity, and how many combinations agree with the floor to a cent are printed.

    python benchmarks/sweep.py            # the full run (vectorbt takes a few minutes)
    python benchmarks/sweep.py --quick    # 20,000 bars, a coarse grid, 50 symbols
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRATEGY = ROOT / "examples" / "sma_crossover_signals.py"
CASH = 100_000.0
FULL_GRID = ("fast=5:50:1", "slow=20:200:5")
QUICK_GRID = ("fast=5:50:5", "slow=20:200:20")
WARMUP_GRID = ("fast=5:6:1", "slow=20:25:5")
WHERE = "fast < slow"
B_FAST, B_SLOW = 10, 30


# -- data (seeded, so every process builds the same bars) ---------------------------


def minute_table(n: int) -> Any:
    """Return ``n`` seeded random-walk one-minute bars (XNYS sessions) of one symbol, as an Arrow table."""
    from quantfleet.data.ingest.synthetic import synthetic_bars

    years = int(n / (390 * 252)) + 1
    return synthetic_bars(
        ["BENCH"], start=date(2025 - years, 1, 1), end=date(2025, 12, 31), frequency="1m", actions=False, seed=7
    ).bars.slice(0, n)


def daily_arrays(symbols: int, years: int) -> dict[str, np.ndarray]:
    """Return seeded daily bars as (bars, symbols) arrays (every symbol trades every session)."""
    import pyarrow.compute as pc

    from quantfleet.data.ingest.synthetic import synthetic_bars

    names = [f"S{k:03d}" for k in range(symbols)]
    table = synthetic_bars(names, start=date(2024 - years, 1, 1), end=date(2023, 12, 31), actions=False, seed=11).bars
    parts = [table.filter(pc.equal(table.column("symbol"), s)) for s in names]
    out = {k: np.column_stack([p.column(k).to_numpy() for p in parts]) for k in ("open", "high", "low", "close")}
    out["volume"] = np.column_stack([p.column("volume").to_numpy() for p in parts]).astype(np.float64)
    out["ts"] = parts[0].column("ts").cast("int64").to_numpy()
    return out


def grid_of(items: Sequence[str]) -> list[tuple[int, int]]:
    """Return the (fast, slow) combinations of ``NAME=START:STOP:STEP`` items with fast < slow, in grid order."""
    ranges = {}
    for item in items:
        name, spec = item.split("=")
        lo, hi, step = (int(x) for x in spec.split(":"))
        ranges[name] = range(lo, hi + 1, step)
    return [(f, s) for f in ranges["fast"] for s in ranges["slow"] if f < s]


# -- scenario A: the sweep --------------------------------------------------------


def _job(store: Any, grid: Sequence[str], simulator: str) -> Any:
    from quantfleet.core.types import Adjustment, Frequency
    from quantfleet.engine import EngineConfig
    from quantfleet.sandbox import BacktestSpec
    from quantfleet.strategy.loader import load_strategy
    from quantfleet.sweep import Search, SweepJob, parse_space

    spec = BacktestSpec(
        strategy=STRATEGY,
        symbols=("BENCH",),
        frequency=Frequency.MINUTE_1,
        snapshot=int(store.resolve(None)),
        engine=EngineConfig(cash=CASH, adjustment=Adjustment.ALL, fractional=False),
        simulator=simulator,  # type: ignore[arg-type]
    )
    space = parse_space(list(grid), [WHERE], load_strategy(STRATEGY).parameters)
    return SweepJob(backtest=spec, search=Search(space=space, metric="total_return"), top=0)


def _timed_sweep(job: Any, store: Any, out: Path, workers: int) -> tuple[float, Any]:
    """Run one sweep; return the seconds from the call to its last evaluation, and the outcome."""
    from quantfleet.sweep import run_sweep

    start = time.perf_counter()
    last = [start]

    def tick(done: int, total: int) -> None:
        last[0] = time.perf_counter()

    outcome = run_sweep(job, store, out, workers=workers, progress=tick)
    return last[0] - start, outcome


def _store_of(bars: int, root: Path) -> Any:
    from quantfleet.data import MarketDataStore

    store = MarketDataStore(str(root / "data"))
    store.ingest_bars([minute_table(bars)], frequency="1m")
    return store


def run_quantfleet(bars: int, grid: Sequence[str], workers: int, simulator: str) -> dict[str, Any]:
    """Sweep on a fresh store: a timed warm-up (compile or cache load), then the best of up to 3 sweeps."""
    from quantfleet.core.errors import ConfigError

    root = Path(tempfile.mkdtemp(prefix="qf-sweep-bench-"))
    try:
        store = _store_of(bars, root)
        try:
            warmup, _ = _timed_sweep(_job(store, WARMUP_GRID, simulator), store, root / "warm", 1)
        except ConfigError as exc:
            if simulator != "vectorized" or "not available yet" not in str(exc):
                raise
            simulator = "event"  # this checkout has no vectorized sweep yet: say so in the output
            warmup, _ = _timed_sweep(_job(store, WARMUP_GRID, simulator), store, root / "warm", 1)
        job = _job(store, grid, simulator)
        seconds, runs = float("inf"), 0
        while runs < 3 and (runs == 0 or seconds < 10):
            spent, outcome = _timed_sweep(job, store, root / f"sweep{runs}", workers)
            seconds, runs = min(seconds, spent), runs + 1
        by_combo = {tuple(e.params[k] for k in ("fast", "slow")): e.metrics for e in outcome.leaderboard.entries}
        combos = grid_of(grid)
        equity = [by_combo[c]["final_equity"] for c in combos]
        return {
            "simulator": simulator,
            "combos": len(combos),
            "seconds": seconds,
            "runs": runs,
            "warmup": warmup,
            "equity": equity,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_compile(bars: int) -> dict[str, Any]:
    """Time the tiny warm-up sweep alone (in a process whose Numba cache the parent chose)."""
    root = Path(tempfile.mkdtemp(prefix="qf-sweep-compile-"))
    try:
        store = _store_of(bars, root)
        seconds, _ = _timed_sweep(_job(store, WARMUP_GRID, "vectorized"), store, root / "warm", 1)
        return {"seconds": seconds}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _strict_signals(fast: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return entries and exits shifted one bar: a strict cross on bar i's close trades at bar i+1's open."""
    entries = np.zeros(fast.shape, dtype=np.bool_)
    exits = np.zeros(fast.shape, dtype=np.bool_)
    entries[2:] = (fast[:-2] < slow[:-2]) & (fast[1:-1] > slow[1:-1])
    exits[2:] = (fast[:-2] > slow[:-2]) & (fast[1:-1] < slow[1:-1])
    return entries, exits


def _vbt_chunk(close: Any, open_: Any, combos: Sequence[tuple[int, int]], native: bool) -> np.ndarray:
    """Return the final value of each combination, run as one vectorbt call over ``len(combos)`` columns.

    By default vectorbt is given pandas' averages and strict crosses, like the others (as benchmarks/engine.py
    feeds backtrader): its own ``MA`` sums cumulatively and its ``crossed_above`` also counts a cross through
    an exact tie, so at minute resolution some runs part ways for reasons of rounding alone. ``native``
    uses ``MA.run`` and ``ma_crossed_above``/``below`` instead.
    """
    import vectorbt as vbt

    if native:
        fast = vbt.MA.run(close, [f for f, _ in combos], short_name="fast")
        slow = vbt.MA.run(close, [s for _, s in combos], short_name="slow")
        entries = fast.ma_crossed_above(slow).vbt.fshift(1, fill_value=False).to_numpy()
        exits = fast.ma_crossed_below(slow).vbt.fshift(1, fill_value=False).to_numpy()
    else:
        series = close.reset_index(drop=True)
        sma = {w: series.rolling(w).mean().to_numpy() for w in sorted({w for c in combos for w in c})}
        entries, exits = _strict_signals(
            np.column_stack([sma[f] for f, _ in combos]), np.column_stack([sma[s] for _, s in combos])
        )
    pf = vbt.Portfolio.from_signals(
        close, entries, exits, price=open_, size=np.inf, size_granularity=1, init_cash=CASH, fees=0.0
    )
    return np.asarray(pf.final_value(), dtype=np.float64).reshape(-1)


def run_vectorbt(bars: int, grid: Sequence[str], chunk: int, native: bool) -> dict[str, Any]:
    """Run vectorbt over the grid, ``chunk`` combinations per call (0: all in one call)."""
    import warnings

    import pandas as pd

    warnings.simplefilter("ignore")
    table = minute_table(bars)
    index = pd.to_datetime(table.column("ts").cast("int64").to_numpy(), unit="us")
    close = pd.Series(table.column("close").to_numpy(), index=index)
    open_ = pd.Series(table.column("open").to_numpy(), index=index)
    combos = grid_of(grid)
    start = time.perf_counter()
    _vbt_chunk(close.iloc[:2000], open_.iloc[:2000], combos[:2], native)  # compile (or load vectorbt's Numba cache)
    warmup = time.perf_counter() - start
    size = chunk or len(combos)
    seconds, runs = float("inf"), 0
    while runs < 3 and (runs == 0 or seconds < 10):
        start = time.perf_counter()
        equity = np.concatenate(
            [_vbt_chunk(close, open_, combos[k : k + size], native) for k in range(0, len(combos), size)]
        )
        seconds, runs = min(seconds, time.perf_counter() - start), runs + 1
    return {"combos": len(combos), "seconds": seconds, "runs": runs, "warmup": warmup, "equity": equity.tolist()}


def _backtest_nb() -> Callable[..., float]:
    from numba import njit

    @njit(cache=True)
    def backtest_nb(fast: np.ndarray, slow: np.ndarray, open_: np.ndarray, close: np.ndarray, cash: float) -> float:
        """Return the final equity of the all-in long-only crossover of ``fast`` over ``slow``."""
        qty = 0.0
        held = 0.0  # the position last ordered
        pending = -1.0  # the target of the order to fill at this bar's open; -1: none
        for i in range(len(close)):
            if pending == 1.0:
                qty = np.trunc(cash / open_[i] + 1e-9)  # all in, whole shares, at the open
                cash -= qty * open_[i]
            elif pending == 0.0:
                cash += qty * open_[i]
                qty = 0.0
            pending = -1.0
            if i > 0:
                if fast[i - 1] < slow[i - 1] and fast[i] > slow[i]:
                    want = 1.0
                elif fast[i - 1] > slow[i - 1] and fast[i] < slow[i]:
                    want = 0.0
                else:
                    want = held
                if want != held:
                    held = pending = want
        return float(cash + qty * close[-1])

    return backtest_nb


def run_floor(bars: int, grid: Sequence[str]) -> dict[str, Any]:
    """Run the hand-written loop over every combination on one core."""
    import pandas as pd

    table = minute_table(bars)
    open_, close = table.column("open").to_numpy(), table.column("close").to_numpy()
    combos = grid_of(grid)
    start = time.perf_counter()
    backtest_nb = _backtest_nb()
    z = np.zeros(10)
    backtest_nb(z, z, z + 1, z + 1, CASH)
    warmup = time.perf_counter() - start
    seconds, runs = float("inf"), 0
    while runs < 3 and (runs == 0 or seconds < 10):
        start = time.perf_counter()
        series = pd.Series(close)
        sma = {w: series.rolling(w).mean().to_numpy() for w in sorted({w for c in combos for w in c})}
        equity = [backtest_nb(sma[f], sma[s], open_, close, CASH) for f, s in combos]
        seconds, runs = min(seconds, time.perf_counter() - start), runs + 1
    return {"combos": len(combos), "seconds": seconds, "runs": runs, "warmup": warmup, "equity": equity}


# -- scenario B: one parameter set, 500 symbols -------------------------------------------


def run_quantfleet_b(symbols: int, years: int, portfolio: bool) -> dict[str, Any]:
    """Run the vectorized engine on every symbol alone (summed), or on all of them as one portfolio."""
    from quantfleet.engine import EngineConfig, Feed
    from quantfleet.engine.vectorized import run_vectorized
    from quantfleet.strategy.loader import load_strategy

    data = daily_arrays(symbols, years)
    fields = {k: data[k] for k in ("open", "high", "low", "close", "volume")}
    loaded = load_strategy(STRATEGY)
    params = {"fast": B_FAST, "slow": B_SLOW}
    if portfolio:
        names = tuple(f"S{k:03d}" for k in range(symbols))
        feeds = [(Feed.from_arrays(names, data["ts"], fields), CASH * symbols)]
    else:
        feeds = [
            (Feed.from_arrays(("X",), data["ts"], {k: v[:, j] for k, v in fields.items()}), CASH)
            for j in range(symbols)
        ]
    start = time.perf_counter()
    run_vectorized(loaded.target, feeds[0][0], EngineConfig(cash=feeds[0][1]), params=params, start=0)
    warmup = time.perf_counter() - start
    seconds, runs = float("inf"), 0
    while runs < 3 and (runs == 0 or seconds < 10):
        start, total = time.perf_counter(), 0.0
        for feed, cash in feeds:
            total += run_vectorized(loaded.target, feed, EngineConfig(cash=cash), params=params, start=0).final_equity
        seconds, runs = min(seconds, time.perf_counter() - start), runs + 1
    return {"bars": data["close"].size, "seconds": seconds, "runs": runs, "warmup": warmup, "total": total}


def run_vectorbt_b(symbols: int, years: int, native: bool) -> dict[str, Any]:
    """Run one vectorbt Portfolio of ``symbols`` columns, each with its own cash; sum the final values."""
    import warnings

    import pandas as pd
    import vectorbt as vbt

    warnings.simplefilter("ignore")
    data = daily_arrays(symbols, years)
    index = pd.to_datetime(data["ts"], unit="us")
    close, open_ = pd.DataFrame(data["close"], index=index), pd.DataFrame(data["open"], index=index)

    def run() -> float:
        if native:
            fast, slow = vbt.MA.run(close, B_FAST, short_name="fast"), vbt.MA.run(close, B_SLOW, short_name="slow")
            entries = fast.ma_crossed_above(slow).vbt.fshift(1, fill_value=False).to_numpy()
            exits = fast.ma_crossed_below(slow).vbt.fshift(1, fill_value=False).to_numpy()
        else:
            entries, exits = _strict_signals(
                close.rolling(B_FAST).mean().to_numpy(), close.rolling(B_SLOW).mean().to_numpy()
            )
        pf = vbt.Portfolio.from_signals(
            close, entries, exits, price=open_, size=np.inf, size_granularity=1, init_cash=CASH
        )
        return float(np.sum(pf.final_value()))

    start = time.perf_counter()
    run()
    warmup = time.perf_counter() - start
    seconds, runs = float("inf"), 0
    while runs < 3 and (runs == 0 or seconds < 10):
        start = time.perf_counter()
        total = run()
        seconds, runs = min(seconds, time.perf_counter() - start), runs + 1
    return {"bars": data["close"].size, "seconds": seconds, "runs": runs, "warmup": warmup, "total": total}


# -- the parent: one process per engine, side by side ----------------------------------------


def _tree_rss(pid: int) -> int:
    """Return the summed resident bytes of process ``pid`` and its descendants (0 once it is gone)."""
    try:
        import psutil

        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for kid in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a worker that just ended
                total += kid.memory_info().rss
        return int(total)
    except Exception:  # no psutil, or the process just ended: the child's own max RSS still counts
        return 0


def spawn(args: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any] | None, str]:
    """Run this script as a child; return its JSON result (with ``peak_mb``) or None and the last error line."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        return None, (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:100]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = max(peak[0] / 2**20, result.pop("self_mb"))
    return result, ""


def child(args: argparse.Namespace) -> None:
    """Run one engine and print a JSON line."""
    kind = args.child
    grid = QUICK_GRID if args.quick else FULL_GRID
    if kind in ("quantfleet", "quantfleet-1"):
        result = run_quantfleet(args.bars, grid, args.workers if kind == "quantfleet" else 1, args.simulator)
    elif kind == "compile":
        result = run_compile(2_000)
    elif kind == "vectorbt":
        result = run_vectorbt(args.bars, grid, 0 if args.full_vectorbt else args.vbt_chunk, args.vbt_native)
    elif kind == "floor":
        result = run_floor(args.bars, grid)
    elif kind in ("quantfleet-b", "quantfleet-b-portfolio"):
        result = run_quantfleet_b(args.symbols, args.years, portfolio=kind.endswith("portfolio"))
    else:
        result = run_vectorbt_b(args.symbols, args.years, args.vbt_native)
    result["self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _best(equity: Sequence[float], combos: Sequence[tuple[int, int]]) -> str:
    k = int(np.argmax(np.asarray(equity)))  # the first of equals: the leaderboard breaks ties by grid order
    return f"{combos[k][0]}/{combos[k][1]}  {equity[k]:,.2f} ({equity[k] / CASH - 1:+.2%})"


def scenario_a(args: argparse.Namespace, passthrough: list[str]) -> dict[str, dict[str, Any]]:
    """Run scenario A's engines and print their rows."""
    combos = grid_of(QUICK_GRID if args.quick else FULL_GRID)
    print(
        f"\nA: SMA-crossover grid, {len(combos):,} combinations (fast < slow), 1 symbol x {args.bars:,} one-minute bars"
    )
    cache = tempfile.mkdtemp(prefix="qf-numba-cache-")
    try:  # the first call in a process with an empty Numba cache (a cold compile), then with the cache it wrote
        cold, _ = spawn(["--child", "compile"], {"NUMBA_CACHE_DIR": cache})
        warm, _ = spawn(["--child", "compile"], {"NUMBA_CACHE_DIR": cache})
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    vbt_label = "vectorbt (one call)" if args.full_vectorbt else f"vectorbt (chunks of {args.vbt_chunk})"
    vbt_label += ", native MA" if args.vbt_native else ""
    rows = {
        "quantfleet": f"quantfleet ({args.workers} workers)",
        "quantfleet-1": "quantfleet (1 process, no pool)",
        "vectorbt": vbt_label,
        "floor": "hand-written Numba loop (1 core)",
    }
    print(f"  {'engine':36} {'combos/s':>10} {'seconds':>9} {'peak MB':>9} {'first call s':>13}  best (final equity)")
    results: dict[str, dict[str, Any]] = {}
    for kind in args.engines.split(","):
        if kind not in rows:
            continue
        r, error = spawn(["--child", kind, *passthrough])
        if r is None:
            print(f"  {rows[kind]:36} not run: {error}")
            continue
        results[kind] = r
        label = rows[kind] + (f" [{r['simulator']}]" if r.get("simulator", "vectorized") != "vectorized" else "")
        print(
            f"  {label:36} {r['combos'] / r['seconds']:>10,.0f} {r['seconds']:>9.2f} {r['peak_mb']:>9,.0f} "
            f"{r['warmup']:>13.2f}  {_best(r['equity'], combos)}"
        )
    if cold and warm:
        print(
            f"  quantfleet first call (tiny sweep, 1 process): {cold['seconds']:.1f} s with an empty Numba cache, "
            f"{warm['seconds']:.1f} s with the cache it wrote"
        )
    if "floor" in results:
        rate = results["floor"]["combos"] / results["floor"]["seconds"]
        for kind in ("quantfleet", "quantfleet-1", "vectorbt"):
            if kind in results:
                ratio = rate / (results[kind]["combos"] / results[kind]["seconds"])
                print(f"  {rows[kind]}: {ratio:.2f}x the floor's time per combination (quantfleet's goal: 2x at most)")
        floor = np.asarray(results["floor"]["equity"])
        for kind in ("quantfleet", "quantfleet-1", "vectorbt"):
            if kind in results:
                same = np.abs(np.asarray(results[kind]["equity"]) - floor) < 0.005
                print(f"  {rows[kind]}: final equity within a cent of the floor's for {same.sum():,} of {same.size:,}")
    return results


def scenario_b(args: argparse.Namespace, passthrough: list[str]) -> None:
    """Run scenario B's engines and print their rows."""
    print(f"\nB: SMA crossover {B_FAST}/{B_SLOW}, {args.symbols} symbols x {args.years} years of daily bars")
    rows = {
        "quantfleet-b": "quantfleet vectorized, 1 symbol per run, summed",
        "quantfleet-b-portfolio": "quantfleet vectorized, 1 shared-cash portfolio",
        "vectorbt-b": "vectorbt, 1 Portfolio, cash per column",
    }
    print(f"  {'engine':48} {'bars/s':>12} {'seconds':>9} {'peak MB':>9} {'first call s':>13} {'final equity':>16}")
    for kind, label in rows.items():
        r, error = spawn(["--child", kind, *passthrough])
        if r is None:
            print(f"  {label:48} not run: {error}")
            continue
        print(
            f"  {label:48} {r['bars'] / r['seconds']:>12,.0f} {r['seconds']:>9.3f} {r['peak_mb']:>9,.0f} "
            f"{r['warmup']:>13.2f} {r['total']:>16,.2f}"
        )
    print(
        f"  The shared-cash portfolio sizes each entry at 1/{args.symbols} of the whole portfolio's equity, so its\n"
        f"  final equity differs from the sum of {args.symbols} separate accounts (rows 1 and 3, which should agree)."
    )


def main() -> None:
    """Run every engine on both scenarios and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 bars, a coarse grid, 50 symbols")
    parser.add_argument("--bars", type=int, help="one-minute bars in scenario A (default 100,000)")
    parser.add_argument("--symbols", type=int, help="symbols in scenario B (default 500)")
    parser.add_argument("--years", type=int, default=10, help="years of daily bars in scenario B")
    parser.add_argument("--workers", type=int, default=2, help="quantfleet sweep workers (threads when vectorized)")
    parser.add_argument("--simulator", default="vectorized", choices=("vectorized", "event"), help="quantfleet's")
    parser.add_argument("--vbt-chunk", type=int, default=200, help="vectorbt combinations per call")
    parser.add_argument("--vbt-native", action="store_true", help="vectorbt's own MA and crossed_above/below")
    parser.add_argument("--full-vectorbt", action="store_true", help="the whole grid in one vectorbt call (>10 GB)")
    parser.add_argument(
        "--engines", default="quantfleet,quantfleet-1,vectorbt,floor", help="scenario A, comma-separated subset"
    )
    parser.add_argument("--scenarios", default="A,B", help="comma-separated subset")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.bars = args.bars or (20_000 if args.quick else 100_000)
    args.symbols = args.symbols or (50 if args.quick else 500)
    if args.child:
        child(args)
        return
    passthrough = [
        *(["--quick"] if args.quick else []),
        *(["--full-vectorbt"] if args.full_vectorbt else []),
        *(["--vbt-native"] if args.vbt_native else []),
        *("--bars", str(args.bars), "--symbols", str(args.symbols), "--years", str(args.years)),
        *("--workers", str(args.workers), "--simulator", args.simulator, "--vbt-chunk", str(args.vbt_chunk)),
    ]
    print("SMA crossover: strict crosses, next-open fills, all in whole shares, 100,000 cash, no costs")
    print(f"each engine in its own process; best of up to 3 runs; this machine: {os.cpu_count()} cores")
    if "A" in args.scenarios:
        scenario_a(args, passthrough)
    if "B" in args.scenarios:
        scenario_b(args, passthrough)
    print(
        "\nGoals (A): within 2x of the hand-written loop's combinations/s, under 2 GB peak memory, 2 cores;"
        " compile cached across runs."
    )


if __name__ == "__main__":
    main()
