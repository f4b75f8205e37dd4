"""The ingest's memory of seen timestamps: exact like a set, a few runs per session instead of every bar."""

from __future__ import annotations

from datetime import date

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.data.runs import TimeRuns

_batch = st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=60, unique=True).map(
    lambda xs: np.array(sorted(xs), dtype=np.int64) * 7
)


@given(st.lists(_batch, min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_runs_report_exactly_the_timestamps_an_earlier_batch_held(batches: list[np.ndarray]) -> None:
    runs = TimeRuns()
    earlier: set[int] = set()
    for ts in batches:
        expected = sorted(t for t in ts.tolist() if t in earlier)
        assert runs.add(ts).tolist() == expected
        earlier |= set(ts.tolist())


def test_a_year_of_minute_bars_takes_kilobytes_not_megabytes() -> None:
    bars = synthetic_bars(["AAA"], start=date(2024, 1, 1), end=date(2024, 12, 31), frequency="1m", actions=False).bars
    ts = bars.column("ts").cast("int64").to_numpy()
    runs = TimeRuns()
    assert runs.add(ts).size == 0
    assert ts.nbytes > 700_000  # about 98,000 bars
    assert runs.nbytes < ts.nbytes / 100  # one run per session
    again = runs.add(ts[1000:1003])
    assert again.tolist() == ts[1000:1003].tolist()
