"""The sweep's one-symbol, one-pass kernel scores every combination exactly as the general path does.

``score_one_nb`` re-states the simulator's arithmetic for a book of one symbol
and fuses the headline metrics' first pass into the same loop; a sweep on one
symbol uses it instead of ``simulate_nb`` + ``headline_nb`` + the trade count.
Over random prices (with missing bars), random positions (long, short,
fractional, NaN-free as ``as_positions`` gives them) and random engine
settings, its eleven numbers must equal the general path's to the last bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.engine import EngineConfig, Feed
from quantfleet.engine.config import (
    BpsCommission,
    FixedBpsSlippage,
    NoCommission,
    NoSlippage,
    PerShareCommission,
    VolumeShareSlippage,
)
from quantfleet.engine.vectorized import prepare_market, spec_of
from quantfleet.engine.vectorized.kernels import new_books, new_fill_log, new_order_log
from quantfleet.sweep.scoring import SCORE_KEYS, score_one_nb, score_positions_nb

EXACT = settings(max_examples=300, deadline=None, derandomize=True, database=None)


@st.composite
def cases(draw: Any) -> tuple[Feed, np.ndarray, EngineConfig, int]:
    n = draw(st.integers(1, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    vol = draw(st.sampled_from([0.005, 0.05, 0.3]))
    close = draw(st.floats(1.0, 500.0)) * np.exp(np.cumsum(rng.normal(0, vol, (n, 1)), axis=0))
    open_ = close * np.exp(rng.normal(0, vol / 3, (n, 1)))
    fields = {
        "open": open_,
        "high": np.maximum(open_, close),
        "low": np.minimum(open_, close),
        "close": close,
        "volume": rng.uniform(1, 10_000, (n, 1)).round(),
    }
    gaps = rng.random((n, 1)) < draw(st.sampled_from([0.0, 0.1, 0.4]))
    for v in fields.values():
        v[gaps] = np.nan
    feed = Feed.from_arrays(["X"], (np.arange(n, dtype=np.int64) + 17_000) * 86_400_000_000, fields)
    levels = draw(st.sampled_from([[0.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 0.25, 0.5, 1.0, -0.5, 2.0]]))
    stickiness = draw(st.sampled_from([0.0, 0.8, 0.97]))
    pos = np.empty((n, 1))
    cur = 0.0
    for i in range(n):
        if rng.random() >= stickiness:
            cur = float(rng.choice(levels))
        pos[i, 0] = cur
    fractional = draw(st.booleans())
    commission = draw(
        st.sampled_from(
            [NoCommission(), BpsCommission(bps=2.0)]
            + ([] if fractional else [PerShareCommission(rate=0.005, minimum=1.0)])
        )
    )
    slippage = draw(st.sampled_from([NoSlippage(), FixedBpsSlippage(bps=5.0), VolumeShareSlippage(impact=0.1)]))
    cfg = EngineConfig(
        cash=draw(st.sampled_from([500.0, 100_000.0])),
        commission=commission,
        slippage=slippage,
        fractional=fractional,
        allow_short=draw(st.booleans()),
        max_leverage=draw(st.sampled_from([1.0, 1.5, 3.0])),
        fill_at=draw(st.sampled_from(["next_open", "close"])),
    )
    first = draw(st.integers(0, n))
    return feed, pos, cfg, first


@EXACT
@given(case=cases(), weight=st.sampled_from([1.0, 0.5, 1.7]), ppy=st.sampled_from([252.0, 98_280.0]))
def test_one_pass_kernel_equals_the_general_path(
    case: tuple[Feed, np.ndarray, EngineConfig, int], weight: float, ppy: float
) -> None:
    feed, pos, cfg, first = case
    market = prepare_market(feed)
    spec = spec_of(cfg)
    n = feed.n_bars
    general = np.empty(len(SCORE_KEYS))
    books = new_books(n - first, 1)
    score_positions_nb(
        pos, weight, np.empty((n, 1)), *market, first, spec, books, new_fill_log(0), new_order_log(0), ppy, general
    )
    columns = [np.ascontiguousarray(a[:, 0]) for a in market]
    # With finite marks (as here: gaps are carried over) the kernel may count flat stretches without
    # reading them; without, it walks every bar. Both must give the general path's numbers.
    assert np.isfinite(market.close_marks).all()
    for finite_marks in (True, False):
        one = np.empty(len(SCORE_KEYS))
        rets = np.empty(max(n - first, 0))
        score_one_nb(pos[:, 0].copy(), weight, *columns, first, spec, ppy, rets, one, finite_marks)
        assert np.array_equal(one, general, equal_nan=True), (
            finite_marks,
            dict(zip(SCORE_KEYS, zip(one, general, strict=True), strict=True)),
        )
