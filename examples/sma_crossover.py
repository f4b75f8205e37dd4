"""SMA crossover, class style: long when the fast average crosses above the slow one, flat when below.

Run it:  quantfleet backtest examples/sma_crossover.py --symbols AAA,BBB --start 2018-01-01 --end 2024-12-31
"""

from quantfleet import Strategy
from quantfleet.strategy import crossover, sma


class SmaCross(Strategy):
    fast: int = 10
    slow: int = 30
    weight: float = 1.0  # share of equity invested, split equally across the universe

    def initialize(self, ctx):
        ctx.subscribe(ctx.universe)
        share = self.weight / len(ctx.universe)
        # Indicators are computed once over the whole series and read bar by bar;
        # cross[-1] is +1 on a bar where fast crosses above slow, -1 below, else 0.
        self.legs = [(s, ctx.indicator(self.cross, "close", symbol=s), share) for s in ctx.universe]

    def cross(self, close):
        return crossover(sma(close, self.fast), sma(close, self.slow))

    def on_bar(self, ctx, bars):
        for symbol, cross, share in self.legs:
            signal = cross[-1]
            if signal:
                ctx.order_target_percent(symbol, share if signal > 0 else 0.0)
