"""Cross-sectional momentum, run() style: hold the top N symbols by trailing return, rebalanced daily.

Run it:  quantfleet backtest examples/momentum.py --symbols AAA,BBB,CCC,DDD,EEE --start 2016-01-01 --warmup 60
The same file runs live on a schedule: run(ctx) is called once per bar batch.
"""

import numpy as np


def run(ctx, lookback: int = 60, top: int = 2, invested: float = 0.98):
    scores = {}
    for symbol in ctx.universe:
        closes = ctx.history(symbol, "close", lookback + 1)
        if len(closes) > lookback and not np.isnan(closes).any():
            scores[symbol] = closes[-1] / closes[0] - 1.0
    if len(scores) < top:
        return
    winners = set(sorted(scores, key=scores.get, reverse=True)[:top])
    # Sells first, so the buys that follow at the same open find the cash.
    for symbol in sorted(ctx.universe, key=lambda s: s in winners):
        ctx.order_target_percent(symbol, invested / top if symbol in winners else 0.0)
