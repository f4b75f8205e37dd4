"""SMA crossover, class style: long when the fast average is above the slow one, flat otherwise.

Run it:  quantfleet backtest examples/sma_crossover.py --symbols AAA --start 2018-01-01 --end 2024-12-31
"""

from quantfleet import Strategy
from quantfleet.strategy import crossover, sma


class SmaCross(Strategy):
    fast: int = 10
    slow: int = 30
    weight: float = 1.0  # share of equity per symbol, split across the universe

    def initialize(self, ctx):
        ctx.subscribe(ctx.universe)
        # Indicators are computed once over the whole series and read bar by bar.
        self.cross = {
            s: ctx.indicator(lambda c: crossover(sma(c, self.fast), sma(c, self.slow)), "close", symbol=s)
            for s in ctx.universe
        }

    def on_bar(self, ctx, bars):
        for symbol in bars.symbols:
            signal = self.cross[symbol][-1]
            if signal > 0:
                ctx.order_target_percent(symbol, self.weight / len(ctx.universe))
            elif signal < 0:
                ctx.order_target_percent(symbol, 0.0)
