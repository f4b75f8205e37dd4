"""SMA crossover, signals style: the twin of sma_crossover.py, for the vectorized engine.

Long from a bar where the fast average crosses above the slow one, flat from a
bar where it crosses below (strictly: a < b then a > b), each symbol with an
equal share of ``weight`` of equity. The same trades and equity as the class
style, on either engine.

Run it:  quantfleet backtest examples/sma_crossover_signals.py --symbols AAA,BBB --start 2018-01-01 --engine vectorized
Sweep:   quantfleet sweep examples/sma_crossover_signals.py --symbols AAA --grid fast=5:50:1 --grid slow=20:200:5 \
             --where "fast < slow" --adjustment all
"""

from quantfleet.strategy import crossover, hold, sma


def signals(close, fast: int = 10, slow: int = 30, weight: float = 1.0):
    cross = crossover(sma(close, fast), sma(close, slow))
    # Entries where the fast average crosses above, exits where it crosses below; held in between.
    return hold(cross > 0, cross < 0) * weight
