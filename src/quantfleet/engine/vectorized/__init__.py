"""The vectorized engine: ``signals()`` strategies on a compiled simulator that agrees with the event engine.

:func:`run_vectorized` is the entry point; :mod:`.kernels` holds the Numba
simulator (:func:`~.kernels.simulate_nb`) a sweep calls per parameter set, and
:mod:`.indicators` the compiled indicators (``*_nb``).
"""

from quantfleet.engine.vectorized.kernels import Books, FillLog, OrderLog, SimSpec, position_orders_nb, simulate_nb
from quantfleet.engine.vectorized.run import (
    Market,
    SignalsPlan,
    check_supported,
    prepare_market,
    run_vectorized,
    signal_orders,
    simulate,
    spec_of,
)

__all__ = [
    "Books",
    "FillLog",
    "Market",
    "OrderLog",
    "SignalsPlan",
    "SimSpec",
    "check_supported",
    "position_orders_nb",
    "prepare_market",
    "run_vectorized",
    "signal_orders",
    "simulate",
    "simulate_nb",
    "spec_of",
]
