"""Cross-sectional momentum, signals style: the twin of momentum.py, for the vectorized engine.

Each bar, hold the top ``top`` symbols by trailing ``lookback``-bar return, each
at ``invested / top`` of equity, rebalanced every bar; the rest go flat first,
so the buys at the same open find the cash. ``cross_sectional`` makes
``close`` a (bars, symbols) array and the result a weight per bar and symbol
(NaN: no order on that bar).

Run it:  quantfleet backtest examples/momentum_signals.py --symbols AAA,BBB,CCC,DDD,EEE --start 2016-01-01 \
    --warmup 60 --engine vectorized
"""

import numpy as np


def signals(close, lookback: int = 60, top: int = 2, invested: float = 0.98):
    n, m = close.shape
    weights = np.full((n, m), np.nan)
    if n <= lookback:
        return weights
    past = close[:-lookback]
    now = close[lookback:]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = now / past - 1.0
    # A symbol scores only if every close of its window is known (as ctx.history would show it).
    known = ~np.isnan(close)
    window = np.lib.stride_tricks.sliding_window_view(known, lookback + 1, axis=0).all(axis=-1)
    score = np.where(window, score, np.nan)
    for k, row in enumerate(score):
        ok = ~np.isnan(row)
        if ok.sum() < top:
            continue
        # Highest first; ties keep the universe order (a stable sort, as sorted(..., reverse=True) does).
        ranked = [j for j in np.argsort(-row, kind="stable") if ok[j]]
        weights[k + lookback] = 0.0
        weights[k + lookback, ranked[:top]] = invested / top
    return weights


signals.cross_sectional = True
