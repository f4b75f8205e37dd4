"""The live port of the engine: broker values, and the ``ctx`` a deployment's strategy sees.

Below the live service on purpose: a scheduled run's strategy executes in the
sandboxed child (:mod:`quantfleet.sandbox.live`), which may import the engine
but never :mod:`quantfleet.live` (the database, the broker adapters and their
credentials stay in the worker).
"""
