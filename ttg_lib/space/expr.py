"""A small, safe expression language over the axes, for ``where:`` and ``derived:``.

The text is parsed with :mod:`ast` and every node is checked against a whitelist before
anything runs: axis names, numbers, strings, True/False, arithmetic, comparisons, and/or/not,
``x if c else y`` and a few math functions. Nothing is ever passed to ``eval``: the checked
tree is walked by :func:`evaluate`, which applies numpy operations to whole columns (a
block of 10^6 candidate points per call). Each expression's column kind (int, float, bool,
str) is inferred once from the axes' kinds, so every chunk of a derived axis has one type.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import SpaceError

if TYPE_CHECKING:
    import numpy as np

MAX_LENGTH = 1000
MAX_DEPTH = 100  # nodes from the root: far beyond a written condition
FLOAT_FUNCS = ("sqrt", "log", "log2", "log10", "exp", "sin", "cos", "tan")
INT_FUNCS = ("floor", "ceil", "round", "int")
SAME_FUNCS = ("abs", "min", "max", "float")
ALLOWED = ("axis names, numbers, 'strings', True/False; + - * / // % **; "
           "< <= > >= == != (chained too), in / not in (a tuple of constants); and, or, not; "
           "x if cond else y; functions " + ", ".join(SAME_FUNCS + FLOAT_FUNCS + INT_FUNCS))
_NODES = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
          ast.Mod: "%", ast.Pow: "**"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
            ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in"}
_NUMERIC = ("int", "float", "bool")


@dataclass(frozen=True)
class Expr:
    """A checked expression: its text, its tree, the axes it reads and its result kind."""

    text: str
    tree: ast.expr
    names: frozenset[str]
    kind: str

    def evaluate(self, columns: Mapping[str, np.ndarray], count: int) -> np.ndarray:
        """The expression over ``count`` points (``columns``: every name it reads)."""
        import numpy as np

        with np.errstate(all="ignore"):  # log(0), 1/0: inf or nan, checked by the caller
            value = _eval(self.tree, columns)
        array = np.asarray(value)
        if array.ndim == 0:
            array = np.full(count, array[()])
        if self.kind == "int" and array.dtype != np.int64:
            array = array.astype(np.int64)
        elif self.kind == "float" and array.dtype != np.float64:
            array = array.astype(np.float64)
        return array


def compile_expr(field: str, text: Any, kinds: Mapping[str, str]) -> Expr:
    """Parse and check ``text`` against the axes' kinds; one :class:`SpaceError` naming the
    field, the expression and what is allowed if anything is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise SpaceError(field, text, f"an expression written as text, e.g. \"a < b and "
                                      f"depth != 4\"; allowed: {ALLOWED}")
    if len(text) > MAX_LENGTH:
        raise SpaceError(field, text, f"an expression of at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        why = exc.msg if isinstance(exc, SyntaxError) else str(exc) or type(exc).__name__
        raise SpaceError(field, text, f"not a valid expression ({why}); allowed: "
                                      f"{ALLOWED}") from None
    if _depth(tree) > MAX_DEPTH:
        raise SpaceError(field, text, f"nested more than {MAX_DEPTH} levels deep")
    checker = _Checker(field, text, kinds)
    kind = checker.kind(tree)
    return Expr(text=text, tree=tree, names=frozenset(checker.names), kind=kind)


def _depth(tree: ast.AST) -> int:
    """How deep the tree is, walked without recursion (the checker and the evaluator
    recurse, so a deep tree is refused before they see it)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


class _Checker:
    """Walks the tree once: refuses any node off the whitelist, infers the result kind."""

    def __init__(self, field: str, text: str, kinds: Mapping[str, str]):
        self.field, self.text, self.kinds = field, text, kinds
        self.names: set[str] = set()

    def fail(self, what: str) -> SpaceError:
        return SpaceError(self.field, self.text, f"{what}; allowed: {ALLOWED}")

    def kind(self, node: ast.expr) -> str:
        method: Callable[[Any], str] | None = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(f"{_describe(node)} is not allowed")
        return method(node)

    def numeric(self, node: ast.expr, what: str) -> str:
        kind = self.kind(node)
        if kind not in _NUMERIC:
            raise self.fail(f"{what} needs numbers, and {ast.unparse(node)!r} is a {kind}")
        return "int" if kind == "bool" else kind

    def _Name(self, node: ast.Name) -> str:
        if node.id in ("True", "False"):
            return "bool"
        if node.id not in self.kinds:
            known = ", ".join(self.kinds) or "none"
            raise self.fail(f"unknown name {node.id!r} (the axes it may use: {known})")
        self.names.add(node.id)
        return self.kinds[node.id]

    def _Constant(self, node: ast.Constant) -> str:
        value = node.value
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise self.fail(f"the number {value} does not fit in 64 bits")
            return "int"
        if isinstance(value, float):
            return "float"
        if isinstance(value, str):
            return "str"
        raise self.fail(f"the constant {value!r} is not allowed")

    def _UnaryOp(self, node: ast.UnaryOp) -> str:
        if isinstance(node.op, ast.Not):
            self.boolean(node.operand, "not")
            return "bool"
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            return self.numeric(node.operand, "a sign")
        raise self.fail(f"{_describe(node)} is not allowed")

    def boolean(self, node: ast.expr, what: str) -> None:
        kind = self.kind(node)
        if kind != "bool":
            raise self.fail(f"{what} needs a condition (True or False), and "
                            f"{ast.unparse(node)!r} is a {kind}; compare it, e.g. x != 0")

    def _BinOp(self, node: ast.BinOp) -> str:
        op = _NODES.get(type(node.op))
        if op is None:
            raise self.fail(f"the operator in {ast.unparse(node)!r} is not allowed")
        left = self.numeric(node.left, op)
        right = self.numeric(node.right, op)
        if op == "/":
            return "float"
        return "float" if "float" in (left, right) else "int"

    def _BoolOp(self, node: ast.BoolOp) -> str:
        word = "and" if isinstance(node.op, ast.And) else "or"
        for value in node.values:
            self.boolean(value, word)
        return "bool"

    def _Compare(self, node: ast.Compare) -> str:
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            symbol = _COMPARE.get(type(op))
            if symbol is None:
                raise self.fail(f"the comparison in {ast.unparse(node)!r} is not allowed")
            a = self.kind(left)
            if symbol in ("in", "not in"):
                if not isinstance(right, (ast.Tuple, ast.List)) or not right.elts:
                    raise self.fail(f"{symbol} takes a tuple of constants, e.g. depth in (2, 4)")
                kinds = {self._member(elt) for elt in right.elts}
            else:
                kinds = {self.kind(right)}
            for b in kinds:
                if (a == "str") != (b == "str"):
                    raise self.fail(f"{ast.unparse(node)!r} compares text with a number")
            left = right
        return "bool"

    def _member(self, node: ast.expr) -> str:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and \
                isinstance(node.operand, ast.Constant):
            return self.numeric(node.operand, "a sign")
        if not isinstance(node, ast.Constant):
            raise self.fail(f"in takes constants, not {ast.unparse(node)!r}")
        return self._Constant(node)

    def _IfExp(self, node: ast.IfExp) -> str:
        self.boolean(node.test, "if")
        body, orelse = self.kind(node.body), self.kind(node.orelse)
        if body == orelse:
            return body
        if body in _NUMERIC and orelse in _NUMERIC:
            return "float" if "float" in (body, orelse) else "int"
        raise self.fail(f"both branches of {ast.unparse(node)!r} must be numbers, or both text")

    def _Call(self, node: ast.Call) -> str:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in SAME_FUNCS + FLOAT_FUNCS + INT_FUNCS:
            raise self.fail(f"the call {ast.unparse(node.func)}(...) is not allowed")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"{name}() takes plain arguments")
        many = name in ("min", "max")
        if (many and len(node.args) < 2) or (not many and len(node.args) != 1):
            raise self.fail(f"{name}() takes {'two or more arguments' if many else 'one'}")
        kinds = [self.numeric(arg, f"{name}()") for arg in node.args]
        if name in FLOAT_FUNCS or name == "float":
            return "float"
        if name in INT_FUNCS:
            return "int"
        return "float" if "float" in kinds else "int"


def _describe(node: ast.AST) -> str:
    names = {ast.Attribute: "attribute access", ast.Subscript: "indexing",
             ast.Lambda: "lambda", ast.NamedExpr: "assignment (:=)",
             ast.ListComp: "a comprehension", ast.GeneratorExp: "a comprehension",
             ast.DictComp: "a comprehension", ast.SetComp: "a comprehension",
             ast.Dict: "a dict", ast.Set: "a set", ast.List: "a list", ast.Tuple: "a tuple",
             ast.JoinedStr: "an f-string", ast.Await: "await", ast.Starred: "unpacking"}
    label = names.get(type(node), type(node).__name__)
    try:
        return f"{label} ({ast.unparse(node)!r})"
    except Exception:  # an odd node that cannot be written back
        return label


# --- evaluation on numpy columns -------------------------------------------------------------

def _eval(node: ast.expr, cols: Mapping[str, Any]) -> Any:
    import numpy as np

    if isinstance(node, ast.Name):
        return {"True": True, "False": False}.get(node.id, cols.get(node.id))
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, cols)
        if isinstance(node.op, ast.Not):
            return np.logical_not(value)
        return np.negative(value) if isinstance(node.op, ast.USub) else np.positive(value)
    if isinstance(node, ast.BoolOp):
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = _eval(node.values[0], cols)
        for value in node.values[1:]:
            result = combine(result, _eval(value, cols))
        return result
    if isinstance(node, ast.BinOp):
        return _binop(type(node.op), _eval(node.left, cols), _eval(node.right, cols))
    if isinstance(node, ast.Compare):
        return _compare(node, cols)
    if isinstance(node, ast.IfExp):
        return np.where(_eval(node.test, cols), _eval(node.body, cols),
                        _eval(node.orelse, cols))
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)  # the checker allowed nothing else
        return _call(node.func.id, [_eval(arg, cols) for arg in node.args])
    raise AssertionError(f"unchecked node {type(node).__name__}")


def _ints(value: Any) -> Any:
    """Booleans count as 0 and 1 in arithmetic, as in Python."""
    import numpy as np

    array = np.asarray(value)
    return array.astype(np.int64) if array.dtype == np.bool_ else value


def _binop(op: type, left: Any, right: Any) -> Any:
    import numpy as np

    left, right = _ints(left), _ints(right)
    if op is ast.Pow:
        both_int = np.asarray(left).dtype.kind in "iu" and np.asarray(right).dtype.kind in "iu"
        if not both_int:
            return np.power(left, right)
        if np.any(np.asarray(right) < 0):
            raise ValueError("an integer to a negative power: write 2.0 ** x for a float")
        if np.any(np.abs(np.power(np.asarray(left, dtype=np.float64), right)) >= 2.0**63):
            raise ValueError("an integer power beyond 64 bits: write 2.0 ** x for a float")
        return np.power(left, right)
    if op in (ast.FloorDiv, ast.Mod):
        zero = np.asarray(right) == 0
        if np.asarray(left).dtype.kind in "iu" and np.asarray(right).dtype.kind in "iu" \
                and np.any(zero):
            raise ValueError("an integer divided by zero (// or %)")
    fn = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
          ast.Div: np.true_divide, ast.FloorDiv: np.floor_divide, ast.Mod: np.mod}[op]
    if op in (ast.Add, ast.Sub, ast.Mult) and np.asarray(left).dtype.kind in "iu" \
            and np.asarray(right).dtype.kind in "iu":  # int64 wraps silently; Python's does not
        wide = fn(np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64))
        if np.any(np.abs(wide) >= 2.0**63):
            raise ValueError("an integer result beyond 64 bits: write a float (1.0 * x)")
    return fn(left, right)


def _compare(node: ast.Compare, cols: Mapping[str, Any]) -> Any:
    import numpy as np

    left = _eval(node.left, cols)
    result: Any = True
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        if isinstance(op, (ast.In, ast.NotIn)):
            assert isinstance(right_node, (ast.Tuple, ast.List))
            members = [_eval(elt, cols) for elt in right_node.elts]
            hit = np.isin(left, members)
            result = np.logical_and(result, hit if isinstance(op, ast.In) else ~hit)
            continue  # a chained "in" is unusual; its right side is no value to go on with
        right = _eval(right_node, cols)
        fn = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
              ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}[type(op)]
        result = np.logical_and(result, fn(np.asarray(left), right))
        left = right
    return result


def _call(name: str, args: list[Any]) -> Any:
    import numpy as np

    if name in ("min", "max"):
        fn = np.minimum if name == "min" else np.maximum
        result = _ints(args[0])
        for arg in args[1:]:
            result = fn(result, _ints(arg))
        return result
    (x,) = args
    x = _ints(x)
    if name == "abs":
        return np.abs(x)
    if name == "float":
        return np.asarray(x, dtype=np.float64)
    if name in INT_FUNCS:
        if np.asarray(x).dtype.kind in "iu":
            return x
        rounded = {"floor": np.floor, "ceil": np.ceil, "round": np.rint,
                   "int": np.trunc}[name](x)
        if not np.all(np.isfinite(rounded)) or np.any(np.abs(rounded) >= 2.0**63):
            raise ValueError(f"{name}() of a value that is not finite or too large")
        return rounded.astype(np.int64)
    return getattr(np, name)(np.asarray(x, dtype=np.float64))
