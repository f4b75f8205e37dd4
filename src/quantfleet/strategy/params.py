"""Strategy parameters: declared with types and defaults, overridden by name.

A class-style strategy declares parameters as annotated class attributes; a
function-style one as keyword parameters with defaults. Overrides arrive as
Python values or as strings from the command line (``--param fast=5``) and are
coerced to the declared type. An unknown or mistyped name is an error that
lists the valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from quantfleet.core.errors import UserError

__all__ = ["ParamSpec", "ParameterError", "coerce", "params_of_class", "params_of_function", "resolve_params"]

_SIMPLE = (int, float, bool, str)


class ParameterError(UserError):
    """A strategy parameter is unknown or has a value of the wrong type."""


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter."""

    name: str
    type: type
    default: Any


def _type_of(annotation: Any, default: Any) -> type:
    if isinstance(annotation, type) and annotation in _SIMPLE:
        return annotation
    if isinstance(annotation, str) and annotation in ("int", "float", "bool", "str"):
        return {"int": int, "float": float, "bool": bool, "str": str}[annotation]
    return type(default) if isinstance(default, _SIMPLE) else object


def params_of_class(cls: type) -> dict[str, ParamSpec]:
    """Return the parameters a strategy class declares (annotated attributes with defaults)."""
    out: dict[str, ParamSpec] = {}
    for klass in reversed(cls.__mro__):
        annotations = inspect.get_annotations(klass)
        for name, annotation in annotations.items():
            if name.startswith("_") or name not in klass.__dict__:
                continue
            default = klass.__dict__[name]
            if callable(default) and not isinstance(default, _SIMPLE):
                continue
            out[name] = ParamSpec(name, _type_of(annotation, default), default)
    return out


def params_of_function(func: Callable[..., Any], *, skip: int) -> dict[str, ParamSpec]:
    """Return the keyword parameters with defaults of ``func``, after its first ``skip`` ones."""
    out: dict[str, ParamSpec] = {}
    for i, p in enumerate(inspect.signature(func).parameters.values()):
        if i < skip or p.default is inspect.Parameter.empty:
            continue
        out[p.name] = ParamSpec(p.name, _type_of(p.annotation, p.default), p.default)
    return out


def coerce(spec: ParamSpec, value: Any) -> Any:
    """Return ``value`` as the parameter's type; raise naming the parameter on a mismatch."""
    want = spec.type
    if want is object or (isinstance(value, want) and not (want is int and isinstance(value, bool))):
        return value
    try:
        if isinstance(value, str):
            text = value.strip()
            if want is bool:
                lowered = text.lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if want is int:
                return int(text)
            return want(text)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if want is int and isinstance(value, float) and value.is_integer():
            return int(value)
    except ValueError:
        pass
    raise ParameterError(f"parameter {spec.name} must be {want.__name__} (default {spec.default!r}), got {value!r}")


def resolve_params(specs: Mapping[str, ParamSpec], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return every parameter's value: the defaults with ``overrides`` applied and checked."""
    unknown = [k for k in overrides if k not in specs]
    if unknown:
        valid = ", ".join(f"{s.name}: {s.type.__name__} = {s.default!r}" for s in specs.values()) or "none"
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; this strategy takes: {valid}")
    values = {name: spec.default for name, spec in specs.items()}
    for name, value in overrides.items():
        values[name] = coerce(specs[name], value)
    return values
