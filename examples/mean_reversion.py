"""Mean reversion with limit orders: buy a dip below the Bollinger band, sell back at the mean.

Run it:  quantfleet backtest examples/mean_reversion.py --symbols AAA,BBB,CCC --start 2016-01-01 --warmup 20
"""

from quantfleet import Strategy
from quantfleet.strategy import rolling_std, sma


class MeanReversion(Strategy):
    lookback: int = 20
    entry_z: float = 2.0  # enter when the close is this many deviations below the mean
    discount: float = 0.005  # bid this far below the close
    weight: float = 0.25  # share of equity per position

    def initialize(self, ctx):
        ctx.subscribe(ctx.universe)
        self.mean = {s: ctx.indicator(sma, "close", self.lookback, symbol=s) for s in ctx.universe}
        self.std = {s: ctx.indicator(rolling_std, "close", self.lookback, symbol=s) for s in ctx.universe}

    def on_bar(self, ctx, bars):
        for symbol in bars.symbols:
            mean, sd = self.mean[symbol][-1], self.std[symbol][-1]
            if sd != sd or ctx.open_orders(symbol):  # warming up, or an order is working
                continue
            close, held = bars.close(symbol), ctx.position(symbol)
            if held == 0 and close < mean - self.entry_z * sd:
                quantity = int(self.weight * ctx.portfolio.equity / close)
                if quantity > 0:
                    ctx.order(symbol, quantity, limit_price=round(close * (1 - self.discount), 2), tif="day")
            elif held > 0 and close >= mean:
                ctx.order(symbol, -held, limit_price=round(mean, 2), tif="day")
                ctx.log.info("taking profit on %s at %.2f", symbol, mean)
