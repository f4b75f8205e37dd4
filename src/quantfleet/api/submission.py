"""From a submission (spec part + strategy upload) to a :class:`~quantfleet.jobs.JobSpec`: checks and pinning.

The strategy is never imported here: untrusted code runs only in a worker's
sandboxed child. The API checks what it can without running it (syntax,
sizes, engine settings, symbols) and pins the snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from quantfleet.api.errors import LimitExceeded, SpecInvalid
from quantfleet.api.schemas import SpecCreate, SweepCreate, WalkForwardCreate
from quantfleet.api.settings import ApiSettings
from quantfleet.core.errors import UserError
from quantfleet.data import MarketDataStore
from quantfleet.engine import EngineConfig
from quantfleet.jobs import CodeRef, JobKind, JobSpec

__all__ = ["check_common", "check_limits", "engine_settings", "job_spec", "parse_spec", "sweep_settings"]

M = TypeVar("M", bound=BaseModel)


def parse_spec(text: str, model: type[M]) -> M:
    """Return the ``spec`` part parsed as ``model``; :class:`SpecInvalid` lists what is wrong, field by field."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecInvalid("the 'spec' part is not JSON", [
            {"loc": ["body", "spec"], "msg": f"not JSON: {exc.msg} at char {exc.pos}", "type": "json_invalid"}
        ]) from None  # fmt: skip
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ["body", "spec", *e["loc"]]} for e in exc.errors(include_url=False, include_input=False)]
        raise SpecInvalid("the 'spec' part is invalid; see 'errors'", errors) from None


def _json_size(value: Any) -> int:
    return len(json.dumps(value, allow_nan=False, default=str).encode())


def check_common(
    *, symbols: Sequence[str], params: Mapping[str, Any], engine: Mapping[str, Any], limits: ApiSettings,
    extra_params: int = 0, benchmark: str | None = None,
) -> None:  # fmt: skip
    """Refuse symbols, parameters or engine settings past a limit (:class:`LimitExceeded`, naming the limit)."""
    if len(symbols) > limits.max_symbols:
        raise LimitExceeded(f"{len(symbols)} symbols; the limit (max_symbols) is {limits.max_symbols}")
    for symbol in [*symbols, benchmark or ""]:
        if len(symbol) > limits.max_symbol_length:
            raise LimitExceeded(
                f"symbol {symbol[:40]!r}... has {len(symbol)} characters; the limit (max_symbol_length) "
                f"is {limits.max_symbol_length}"
            )
    count = len(params) + extra_params
    if count > limits.max_params:
        raise LimitExceeded(f"{count} parameters (params and grid); the limit (max_params) is {limits.max_params}")
    for name, value in params.items():
        if len(name) > 100:
            raise LimitExceeded(f"parameter name {name[:40]!r}... is longer than 100 characters")
        try:
            size = _json_size(value)
        except ValueError:
            raise UserError(f"parameter {name!r} is not plain JSON (NaN and infinity are refused)") from None
        if size > limits.max_param_value_bytes:
            raise LimitExceeded(
                f"parameter {name!r} is {size} bytes as JSON; the limit (max_param_value_bytes) is "
                f"{limits.max_param_value_bytes}"
            )
    if _json_size(engine) > 16 * 1024:
        raise LimitExceeded("the engine settings are larger than 16 KiB as JSON")


def check_limits(spec: SpecCreate, limits: ApiSettings) -> None:
    """Refuse a spec past a limit (:class:`LimitExceeded`, naming the limit)."""
    grid = spec.grid if isinstance(spec, SweepCreate) else []
    check_common(symbols=spec.symbols, params=spec.params, engine=spec.engine, limits=limits,
                 extra_params=len(grid), benchmark=spec.benchmark)  # fmt: skip
    for text in [*grid, *(spec.where if isinstance(spec, SweepCreate) else [])]:
        if len(text) > limits.max_param_value_bytes:
            raise LimitExceeded(
                f"a grid or where entry has {len(text)} characters; the limit (max_param_value_bytes) is "
                f"{limits.max_param_value_bytes}"
            )


def sweep_settings(spec: SpecCreate) -> dict[str, Any] | None:
    """Return the settings a sweep or walk-forward job carries (the shape ``quantfleet submit --grid`` writes)."""
    if not isinstance(spec, SweepCreate):
        return None
    if spec.random is not None and spec.optimize is not None:
        raise UserError("'random' and 'optimize' exclude each other; choose one (or neither, for the whole grid)")
    method = "random" if spec.random is not None else "optimize" if spec.optimize is not None else "grid"
    settings: dict[str, Any] = {
        "grid": list(spec.grid),
        "where": list(spec.where),
        "metric": spec.metric,
        "minimize": spec.minimize,
        "method": method,
        "trials": spec.random or spec.optimize,
        "seed": spec.seed,
    }
    if isinstance(spec, WalkForwardCreate):
        settings.update(train=spec.train.lower(), test=spec.test.lower(), anchored=spec.anchored)
    return settings


def engine_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return engine settings checked and completed by :class:`EngineConfig`; ``errors`` names a bad field."""
    try:
        return EngineConfig.model_validate(settings).model_dump(mode="json")
    except ValidationError as exc:
        errors = [
            {**e, "loc": ["body", "spec", "engine", *e["loc"]]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise SpecInvalid("the engine settings are invalid; see 'errors'", errors) from None


def job_spec(
    spec: SpecCreate,
    *,
    kind: JobKind,
    code: CodeRef,
    owner: str,
    store: MarketDataStore,
    default_calendar: str,
) -> JobSpec:
    """Return the job spec of a checked submission, pinned to the named (default: newest) snapshot."""
    symbols = [s.strip().upper() for s in spec.symbols]
    benchmark = spec.benchmark.strip().upper() if spec.benchmark else spec.benchmark
    try:
        return JobSpec(
            kind=kind,
            code=code,
            params=dict(spec.params),
            universe=tuple(symbols),
            start=spec.start,
            end=spec.end,
            frequency=spec.frequency,
            snapshot=int(store.resolve(spec.snapshot)),
            engine=engine_settings(spec.engine),
            sweep=sweep_settings(spec),
            benchmark=benchmark,
            calendar=spec.calendar or default_calendar,
            limits=spec.limits,
            priority=spec.priority,
            owner=owner,
        )
    except ValidationError as exc:
        errors = [{**e, "loc": ["body", "spec", *e["loc"]]} for e in exc.errors(include_url=False, include_input=False)]
        raise SpecInvalid("the spec is inconsistent; see 'errors'", errors) from None
