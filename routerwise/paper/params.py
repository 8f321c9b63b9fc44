"""Notebook parameters: papermill-native typed declarations, checked in one place.

A notebook's ``parameters`` cell declares each parameter with its type and a help text::

    num_gpus: list[int] = [4, 8]  # cluster sizes G (the comment holds no equals sign)

``papermill --help-notebook`` lists these with their types (papermill skips a line that holds
two ``=``, so help texts avoid the sign). The first code cell after it calls :func:`check`::

    _ = params.check(globals(), num_gpus=params.Range(1, 64, integer=True), space=params.OneOf("paper", "ours"))

(assign the result, ``_ = params.check(...)``: nbval does not honour a trailing ``;``) which
validates every declared parameter against its annotation (``int``, ``float``, ``str``,
``bool``, ``list[int]``, ``list[float]``, ``list[str]``; an int passes for a float; lists must
not be empty) and the given constraint (applied to each element of a list), and raises one
:class:`~routerwise.errors.ValidationError` naming the parameter, its type, the allowed values
and the value given. Types come from the cell's annotations (``__annotations__`` of the
namespace), so papermill's help and the check cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ValidationError

__all__ = ["TYPES", "Range", "OneOf", "check", "check_value"]

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
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"in {'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}" \
               f"{')' if self.hi_open or self.hi is None else ']'}"


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
    return {n: check_value(n, namespace[n], _type_name(t), constraints.get(n))
            for n, t in ann.items()}
