"""Back-adjustment of prices for splits and cash dividends, as of a snapshot.

Factors follow the CRSP / Yahoo convention. For an action with ex-date D,
every bar whose session date is before D is multiplied by:

- a split of ``r`` new shares per old share: prices by ``1 / r``, volume by ``r``;
- a cash dividend ``d``: prices by ``1 - d / c``, where ``c`` is the raw close
  of the last bar before D.

Factors of several actions multiply. Worked example: a stock closes at 100.00
the day before a 1.00 dividend (factor 0.99) and later splits 2-for-1
(factor 0.5). A raw close of 100.00 before both becomes 100.00 x 0.99 x 0.5
= 49.50 with ``adjustment="all"``, and 50.00 with ``adjustment="splits"``.
Prices after the last action are unchanged, so adjusted prices meet today's
quotes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adjustment_factors"]


def adjustment_factors(
    bar_days: np.ndarray,
    closes: np.ndarray,
    ex_days: np.ndarray,
    kinds: np.ndarray,
    values: np.ndarray,
    *,
    dividends: bool,
    close_before: dict[int, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (price factor, volume factor) per bar of one symbol.

    ``bar_days`` are the bars' session dates (days since the epoch, sorted);
    ``ex_days``/``kinds``/``values`` describe the actions. ``close_before``
    supplies the raw close before an ex-date whose previous bar is not among
    ``closes`` (an ex-date after the bars read).
    """
    n = len(bar_days)
    price_step = np.ones(n)
    volume_step = np.ones(n)
    for ex_day, kind, value in zip(ex_days, kinds, values, strict=True):
        k = int(np.searchsorted(bar_days, ex_day, side="left"))
        if k == 0:
            continue  # no bar before the ex-date: nothing to adjust
        if kind == "split":
            price_step[k - 1] /= value
            volume_step[k - 1] *= value
        elif kind == "dividend" and dividends:
            prev = closes[k - 1] if k < n or not close_before else close_before.get(int(ex_day), closes[k - 1])
            factor = 1.0 - value / prev
            if factor > 0:  # a dividend as large as the price is bad data; leave prices alone
                price_step[k - 1] *= factor
    price = np.cumprod(price_step[::-1])[::-1]
    volume = np.cumprod(volume_step[::-1])[::-1]
    return price, volume
