"""SMA crossover, signals style: the twin of sma_crossover.py, for the vectorized engine.

Long from a bar where the fast average crosses above the slow one, flat from a
bar where it crosses below (strictly: a < b then a > b), each symbol with an
equal share of ``weight`` of equity. The same trades and equity as the class
style, on either engine.

Run it:  quantfleet backtest examples/sma_crossover_signals.py --symbols AAA,BBB --start 2018-01-01 --engine vectorized
"""

import numpy as np

from quantfleet.strategy import crossover, sma


def signals(close, fast: int = 10, slow: int = 30, weight: float = 1.0):
    cross = crossover(sma(close, fast), sma(close, slow))
    # The position a cross leaves until the next one: +1 enters, -1 exits, 0 keeps the last (flat at first).
    last = np.maximum.accumulate(np.where(cross != 0, np.arange(len(cross)), -1))
    held = np.where(last >= 0, cross[np.maximum(last, 0)] > 0, False)
    return held * weight
