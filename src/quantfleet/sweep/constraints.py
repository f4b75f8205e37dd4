"""Constraints on parameter combinations, such as ``fast < slow``, parsed safely.

A constraint arrives as a string from the user. It is never passed to
``eval``: it is parsed with :mod:`ast` and only a whitelist of node kinds is
interpreted: names of the sweep's parameters, numbers (and ``True``/``False``),
comparisons (chained too: ``5 <= fast < slow``), ``and``/``or``/``not``,
``+ - * / // %``, unary minus and parentheses. Anything else (attribute
access, calls, subscripts, strings, lambdas, ``__import__``) is a
:class:`~quantfleet.core.errors.ConfigError` that names the problem and the fix.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quantfleet.core.errors import ConfigError

__all__ = ["Constraint", "parse_constraint", "satisfies"]

_ALLOWED = "parameter names, numbers, comparisons (< <= > >= == !=), and/or/not, + - * / // %, parentheses"

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_MAX_LENGTH = 500


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"attribute access ('.{node.attr}')"
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Subscript):
        return "indexing ('[...]')"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.Compare):
        return f"the comparison {type(node.ops[0]).__name__}"
    return f"'{type(node).__name__}'"


@dataclass(frozen=True)
class Constraint:
    """A checked constraint: its text, the parameters it names, and its parsed tree."""

    text: str
    names: frozenset[str]
    _tree: ast.expr = field(repr=False, compare=False)

    def __call__(self, params: Mapping[str, Any]) -> bool:
        """Return whether ``params`` satisfy the constraint (division by zero counts as not)."""
        try:
            return bool(_evaluate(self._tree, params))
        except ZeroDivisionError:
            return False

    def __str__(self) -> str:
        return self.text


def _evaluate(node: ast.expr, params: Mapping[str, Any]) -> Any:
    # Only node kinds that _check admitted reach here.
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return params[node.id]
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, params)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, params), _evaluate(node.right, params))
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_evaluate(v, params) for v in node.values)
        return any(_evaluate(v, params) for v in node.values)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, params)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(right_node, params)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover


def _check(node: ast.AST, known: frozenset[str], text: str, names: set[str]) -> None:
    def bad(problem: str) -> ConfigError:
        return ConfigError(
            f"--where {text!r}: {problem} is not allowed; use only {_ALLOWED}, e.g. --where 'fast < slow'"
        )

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or (isinstance(node.value, int | float) and math.isfinite(node.value)):
            return
        raise bad(_describe(node))
    if isinstance(node, ast.Name):
        if node.id not in known:
            valid = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"--where {text!r}: {node.id!r} is not a parameter of this sweep; "
                f"name one of: {valid} (or add it with --grid {node.id}=...)"
            )
        names.add(node.id)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
        _check(node.operand, known, text, names)
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, known, text, names)
        _check(node.right, known, text, names)
        return
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, known, text, names)
        return
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        for child in (node.left, *node.comparators):
            _check(child, known, text, names)
        return
    raise bad(_describe(node))


def parse_constraint(text: str, parameters: Iterable[str]) -> Constraint:
    """Return the constraint written in ``text`` over ``parameters``; raise ConfigError if it is not one."""
    source = text.strip()
    if not source:
        raise ConfigError("--where '': the constraint is empty; write a comparison, e.g. --where 'fast < slow'")
    if len(source) > _MAX_LENGTH:
        raise ConfigError(f"--where: the constraint is longer than {_MAX_LENGTH} characters; split it or shorten it")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(
            f"--where {text!r} is not a valid expression ({exc.msg}); write e.g. --where 'fast < slow and slow <= 200'"
        ) from None
    names: set[str] = set()
    _check(tree.body, frozenset(parameters), text, names)
    return Constraint(source, frozenset(names), tree.body)


def satisfies(params: Mapping[str, Any], constraints: Iterable[Constraint]) -> bool:
    """Return whether ``params`` satisfy every constraint."""
    return all(c(params) for c in constraints)
