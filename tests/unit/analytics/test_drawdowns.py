"""Drawdown episodes: peak, trough, recovery and depth, also across bars of unknown equity."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.analytics.drawdowns import Drawdown, drawdown_periods, underwater, worst_drawdowns


def test_episodes_by_hand() -> None:
    equity = np.array([100, 110, 99, 105, 111, 100, 90, 95.0])
    assert drawdown_periods(equity) == [
        Drawdown(peak=1, trough=2, recovery=4, depth=pytest.approx(-0.1)),
        Drawdown(peak=4, trough=6, recovery=None, depth=pytest.approx(90 / 111 - 1)),
    ]
    assert [d.peak for d in worst_drawdowns(equity, 1)] == [4]


def test_everything_lost_is_minus_one_without_warnings() -> None:
    with np.errstate(all="raise"):
        uw = underwater(np.array([100, 50, 0, -10, 20.0]))
    np.testing.assert_allclose(uw, [0, -0.5, -1, -1, -0.8])


def test_unknown_equity_neither_ends_nor_starts_an_episode() -> None:
    assert drawdown_periods(np.array([100, 90, np.nan, 95, 100.0])) == [
        Drawdown(peak=0, trough=1, recovery=4, depth=pytest.approx(-0.1))
    ]
    # The peak is the last known high, not the unknown bar before the fall.
    assert drawdown_periods(np.array([100, np.nan, 90, 100.0]))[0].peak == 0


def test_no_drawdown() -> None:
    assert drawdown_periods(np.array([1.0, 2.0, 3.0])) == []
    assert drawdown_periods(np.array([])) == []
