"""A strategy's declared parameters, read from its source without running it, and the submit form's checks.

The dashboard must never execute a researcher's file (that happens only in a
worker's sandbox), so parameters are read from the syntax tree: a class
style strategy's annotated class attributes with literal defaults, or the
keyword parameters with literal defaults of ``run(ctx, ...)`` /
``signals(close, ...)``. The same rules as :mod:`quantfleet.strategy.params`
give each one a type (the annotation, else the default's type).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Declared", "FormError", "check_grid", "coerce_value", "declared_parameters"]

_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
_FUNCTIONS = {"run": 1, "signals": 1, "initialize": 1}  # name -> leading positional parameters to skip
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*:\s*({_NUMBER})\s*(?::\s*({_NUMBER})\s*)?$")
_MAX_COMBINATIONS = 100_000


class FormError(ValueError):
    """A field of the submit form is wrong; the message names the field and the fix."""


@dataclass(frozen=True)
class Declared:
    """One declared parameter: its name, type name (int, float, bool, str, any) and default."""

    name: str
    type: str
    default: Any


def _literal(node: ast.expr | None) -> tuple[bool, Any]:
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False, None


def _type_name(annotation: ast.expr | None, default: Any) -> str:
    if isinstance(annotation, ast.Name) and annotation.id in _TYPES:
        return annotation.id
    if isinstance(annotation, ast.Constant) and annotation.value in _TYPES:
        return str(annotation.value)
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(default, kind):
            return name
    return "any"


def _is_strategy_class(node: ast.ClassDef) -> bool:
    return any(
        (isinstance(b, ast.Name) and b.id == "Strategy") or (isinstance(b, ast.Attribute) and b.attr == "Strategy")
        for b in node.bases
    )


def _class_params(node: ast.ClassDef) -> list[Declared]:
    out = []
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and not item.target.id.startswith("_"):
            ok, default = _literal(item.value)
            if ok:
                out.append(Declared(item.target.id, _type_name(item.annotation, default), default))
    return out


def _function_params(node: ast.FunctionDef, skip: int) -> list[Declared]:
    args = [*node.args.posonlyargs, *node.args.args]
    defaults: list[ast.expr | None] = [None] * (len(args) - len(node.args.defaults)) + list(node.args.defaults)
    pairs = list(zip(args, defaults, strict=True))[skip:]
    pairs += list(zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True))
    out = []
    for arg, default_node in pairs:
        ok, default = _literal(default_node)
        if ok:
            out.append(Declared(arg.arg, _type_name(arg.annotation, default), default))
    return out


def declared_parameters(source: str | bytes, *, class_name: str | None = None) -> list[Declared]:
    """Return the parameters a strategy file declares, in order; raise :class:`FormError` if it is not Python."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" line {line}" if line else ""
        raise FormError(f"the strategy file does not parse{where}: {exc}; fix it and upload it again") from None
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and _is_strategy_class(n)]
    if class_name is not None:
        classes = [n for n in classes if n.name == class_name]
    if classes:
        return _class_params(classes[0])
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("run", "signals"):
            return _function_params(node, _FUNCTIONS[node.name])
    return []


def coerce_value(param: Declared, text: Any) -> Any:
    """Return a form field's value as the parameter's type; raise :class:`FormError` naming the parameter."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return param.default
    if param.type == "bool":
        if isinstance(text, bool):
            return text
        lowered = str(text).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise FormError(f"parameter {param.name} must be true or false, got {text!r}")
    try:
        if param.type == "int":
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if param.type == "float":
            return float(text)
    except (TypeError, ValueError):
        raise FormError(
            f"parameter {param.name} must be {param.type} (default {param.default!r}), got {text!r}"
        ) from None
    return str(text) if param.type == "str" else text


def _count(start: float, stop: float, step: float, name: str) -> int:
    if step <= 0:
        raise FormError(f"grid {name}: the step must be positive, e.g. {name}=5:50:5")
    if stop < start:
        raise FormError(f"grid {name}: the stop {stop:g} is below the start {start:g}; write START:STOP:STEP")
    return int((stop - start) // step) + 1


def check_grid(param: Declared, text: str) -> tuple[str, int] | None:
    """Return a sweep field as ``NAME=...`` with its number of values, None when blank; raise on bad syntax.

    ``START:STOP:STEP`` (inclusive; STEP defaults to 1) or ``a,b,c``, each value of the parameter's type.
    """
    text = (text or "").strip()
    if not text:
        return None
    match = _RANGE.match(text)
    if match:
        if param.type not in ("int", "float"):
            raise FormError(f"grid {param.name}: a range needs a number parameter; list values as a,b,c")
        start, stop, step = (float(g) if g is not None else 1.0 for g in match.groups())
        for bound in (start, stop, step):
            coerce_value(param, bound if param.type == "float" else str(bound))
        count = _count(start, stop, step, param.name)
        if count > _MAX_COMBINATIONS:
            raise FormError(f"grid {param.name}: {count} values; widen the step")
        return f"{param.name}={text.replace(' ', '')}", count
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise FormError(f"grid {param.name}: give START:STOP:STEP or values a,b,c")
    for value in values:
        coerce_value(param, value)
    return f"{param.name}={','.join(values)}", len(values)
