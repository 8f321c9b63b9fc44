"""Notebook parameters: papermill-native typed declarations, checked in one place.

A notebook's ``parameters`` cell declares each parameter with its type and a help text::

    num_gpus: list[int] = [4, 8]  # cluster sizes G (the comment holds no equals sign)

``papermill --help-notebook`` lists these with their types (papermill skips a line that holds
two ``=``, so help texts avoid the sign). The first code cell after it calls :func:`check`::

    _ = params.check(globals(), num_gpus=params.Range(1, 64), space=params.OneOf("paper", "ours"))

(assign the result, ``_ = params.check(...)``: nbval does not honour a trailing ``;``) which
parses a value papermill's ``-p`` passed as text (``-p slos_ms "[500]"``, :func:`from_text`),
validates every declared parameter against its annotation (``int``, ``float``, ``str``,
``bool``, ``list[int]``, ``list[float]``, ``list[str]``; an int passes for a float; lists must
not be empty) and the given constraint (applied to each element of a list), and raises one
:class:`~routerwise.errors.ValidationError` naming the parameter, its type, the allowed values
and the value given. Types come from the cell's annotations (``__annotations__`` of the
namespace), so papermill's help and the check cannot disagree.

:func:`declared_checks` reads the same declarations and constraints from a notebook's cells
without running it, so ``routerwise reproduce`` refuses a bad ``-p`` value before any kernel
starts, with the message the notebook itself would give.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from ..errors import DataError, ValidationError

__all__ = ["TYPES", "Range", "OneOf", "check", "check_value", "declared_checks", "from_text"]

TYPES = ("int", "float", "str", "bool", "list[int]", "list[float]", "list[str]")


@dataclass(frozen=True)
class Range:
    """lo <= x <= hi (``lo_open`` / ``hi_open``: strict); ``None`` for an open end."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, x) -> bool:
        if self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo)):
            return False
        return not (self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi)))

    def describe(self) -> str:
        lo = "-inf" if self.lo is None else _number(self.lo)
        hi = "inf" if self.hi is None else _number(self.hi)
        return f"in {'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}" \
               f"{')' if self.hi_open or self.hi is None else ']'}"


def _number(x) -> str:
    # whole bounds in full (1000000, not 1e+06): a reader compares them with a typed value
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True)
class OneOf:
    """x is one of ``values``."""

    values: tuple

    def __init__(self, *values):
        object.__setattr__(self, "values", tuple(values))

    def ok(self, x) -> bool:
        return x in self.values

    def describe(self) -> str:
        return f"one of {list(self.values)}"


def _type_name(annotation) -> str:
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", None)
    if name == "list" or name is None:
        name = str(annotation).replace("typing.", "").replace("List", "list")
    return name.replace(" ", "")


def _scalar_ok(x, t: str) -> bool:
    if t == "bool":
        return isinstance(x, bool)
    if isinstance(x, bool):
        return False
    if t == "int":
        return isinstance(x, int)
    if t == "float":
        return isinstance(x, (int, float)) and math.isfinite(x)
    return isinstance(x, str)


def check_value(name: str, value, type_name: str, constraint=None):
    """Check one parameter; returns the value (an int given for a float stays an int)."""
    if type_name not in TYPES:
        raise ValidationError(f"parameter {name!r}: type {type_name!r} is not supported; declare "
                              f"one of {list(TYPES)}")
    allowed = f" {constraint.describe()}" if constraint is not None else ""
    if type_name.startswith("list["):
        inner = type_name[5:-1]
        if not isinstance(value, (list, tuple)) or not value or \
                not all(_scalar_ok(x, inner) for x in value):
            raise ValidationError(f"parameter {name!r} must be a non-empty {type_name} (each "
                                  f"{inner}{allowed}); got {value!r}")
        items = value
    else:
        if not _scalar_ok(value, type_name):
            article = "an" if type_name == "int" else "a"
            raise ValidationError(f"parameter {name!r} must be {article} {type_name}{allowed}; got "
                                  f"{value!r} ({type(value).__name__})")
        items = [value]
    if constraint is not None:
        bad = [x for x in items if not constraint.ok(x)]
        if bad:
            what = f"each element of {name!r} ({type_name})" if type_name.startswith("list[") \
                else f"parameter {name!r} ({type_name})"
            raise ValidationError(f"{what} must be {constraint.describe()}; got {bad[0]!r}"
                                  + (f" in {value!r}" if len(items) > 1 else ""))
    return value


def from_text(value, type_name: str):
    """``value`` parsed when it is the text of a list (``"[500]"``: a Python literal) or of a
    bool (``"true"``/``"false"``, YAML's spelling) for a parameter of that type; else unchanged.

    ``papermill -p slos_ms "[500]"`` passes a list as its text (papermill's ``-p`` converts only
    numbers, True, False and None; ``-y "slos_ms: [500]"`` passes YAML), while ``routerwise
    reproduce -p`` parses Python literals: both spellings then give the notebook the same value.
    A quoted number stays text (and is refused): papermill's ``-p`` never produces one.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if type_name == "bool" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if not (type_name or "").startswith("list[") or not text.startswith("["):
        return value
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value     # left as given: check_value names the type it needs


def check(namespace: dict, **constraints) -> dict:
    """Validate every annotated parameter in ``namespace`` (a notebook's ``globals()`` right
    after its ``parameters`` cell, papermill's overrides included) against its type and
    ``constraints[name]`` (a :class:`Range` or :class:`OneOf`). Returns {name: value}.

    A constraint for a name that is not declared is an error too (a typo would otherwise
    silently skip the check).
    """
    ann = namespace.get("__annotations__") or {}
    if not ann:
        raise ValidationError("no typed parameters found: declare them as `name: type = value` "
                              "in the cell tagged `parameters`, then call check(globals(), ...)")
    unknown = sorted(set(constraints) - set(ann))
    if unknown:
        raise ValidationError(f"constraints for undeclared parameters {unknown}; declared: "
                              f"{sorted(ann)}")
    out = {}
    for n, t in ann.items():
        value = from_text(namespace[n], _type_name(t))
        out[n] = namespace[n] = check_value(n, value, _type_name(t), constraints.get(n))
    return out


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _parse(cell: dict, where: str) -> ast.Module:
    # IPython magics (``%matplotlib inline``) are not Python; they declare nothing here
    code = "\n".join(line for line in _source(cell).splitlines()
                     if not line.lstrip().startswith(("%", "!")))
    try:
        return ast.parse(code)
    except SyntaxError as e:
        raise DataError(f"{where}: a code cell is not valid Python ({e.msg}, line {e.lineno})") \
            from None


def declared_checks(cells: list, where: str = "notebook") -> dict:
    """{parameter: (type name, constraint or None)} of a notebook, read without running it.

    Types come from the annotations in the cell tagged ``parameters``, constraints from the
    keywords of the ``params.check(globals(), ...)`` call in the next code cell. A constraint is
    evaluated with only the import statements of the cells before the parameters cell
    (``params.OneOf(*GPUS)`` needs ``GPUS``); one that needs anything else is a
    :class:`~routerwise.errors.DataError` naming it (``where`` names the notebook). A parameter
    declared without a type gets ``(None, None)``.
    """
    code = [c for c in cells if c.get("cell_type") == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise DataError(f"{where}: needs exactly one code cell tagged 'parameters', found "
                        f"{len(tagged)}")
    i = tagged[0]
    out = {}
    for node in _parse(code[i], where).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = (ast.unparse(node.annotation).replace(" ", ""), None)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = (None, None)
    calls = []
    if i + 1 < len(code):
        calls = [n for n in ast.walk(_parse(code[i + 1], where)) if isinstance(n, ast.Call)
                 and ast.unparse(n.func) in ("check", "params.check")]
    if not calls:
        return out
    namespace: dict = {}
    for cell in code[:i]:
        imports = [n for n in _parse(cell, where).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        if imports:
            exec(compile(ast.Module(imports, []), where, "exec"), namespace)
    for kw in calls[0].keywords:
        if kw.arg is None or kw.arg not in out:
            continue   # check() itself refuses these when the notebook runs
        try:
            constraint = eval(compile(ast.Expression(kw.value), where, "eval"), namespace)
        except Exception as e:   # noqa: BLE001 - any failure means "cannot be read up front"
            raise DataError(f"{where}: the constraint {kw.arg}={ast.unparse(kw.value)} of its "
                            f"params.check cell cannot be evaluated before the notebook runs "
                            f"({type(e).__name__}: {e}); build it from literals and imported "
                            f"names") from None
        out[kw.arg] = (out[kw.arg][0], constraint)
    return out
