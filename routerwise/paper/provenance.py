"""What a notebook's recorded numbers rest on: kit version, commit, data, assumptions, kinds.

:func:`provenance` returns one JSON-ready dict that :func:`routerwise.paper.record.record`
stores beside the numbers:

* ``kit_version``: ``routerwise.__version__``;
* ``git_commit``: ``git rev-parse HEAD`` of the checkout the kit runs from (with ``+dirty``
  when tracked files differ from it), else ``"not a git checkout"``;
* ``data_registry_sha256``: sha256 of the sorted ``key sha256`` lines of every source in
  ``routerwise.data.registry.REGISTRY``: two runs on the same pinned data have the same digest,
  and any change of a pinned file (or of the set of files) changes it;
* ``data_sources``: how many sources are registered;
* ``assumptions``: the problem's ``assumptions`` (what each input is: measured, fitted, modelled),
  when the notebook passes its problem.

The kind of each number (measured, fitted, modelled, simulated, ...) is checked in
:func:`check_kinds`: every recorded number needs one.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from ..errors import ValidationError

__all__ = ["KINDS", "kit_version", "git_commit", "registry_digest", "provenance", "check_kinds"]

# Every kind label must name at least one of these words (free text may follow: "simulated
# latency on fitted step costs").
KINDS = ("measured", "fitted", "modelled", "simulated", "predicted", "counted", "parameter",
         "derived", "synthetic")


def kit_version() -> str:
    from .. import __version__
    return __version__


def git_commit(root: str | Path | None = None) -> str:
    """HEAD of the git checkout at ``root`` (default: the one the kit runs from), with
    ``+dirty`` when tracked files are modified; ``"not a git checkout"`` otherwise."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "not a git checkout"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def registry_digest(registry: dict | None = None) -> str:
    """sha256 over the sorted ``"<key> <sha256>\\n"`` lines of the data registry."""
    if registry is None:
        from ..data.registry import REGISTRY as registry
    lines = "".join(f"{k} {registry[k].sha256}\n" for k in sorted(registry))
    return hashlib.sha256(lines.encode()).hexdigest()


def provenance(problem=None, *, assumptions=None) -> dict:
    """The provenance record of a notebook run (see the module docstring). ``problem``: its
    ``assumptions`` are included; ``assumptions``: extra lines (e.g. a notebook's own)."""
    from ..data.registry import REGISTRY
    lines = list(getattr(problem, "assumptions", ()) or ()) + list(assumptions or ())
    return {"kit_version": kit_version(), "git_commit": git_commit(),
            "data_registry_sha256": registry_digest(REGISTRY), "data_sources": len(REGISTRY),
            "problem": getattr(problem, "name", None), "assumptions": [str(a) for a in lines]}


def check_kinds(name: str, keys, labels: dict | None, default_kind: str | None) -> dict:
    """One kind label per key: ``labels[key]``, else ``default_kind``. Raises ValidationError
    naming the keys left without a kind, or a label that names none of :data:`KINDS`."""
    labels = dict(labels or {})
    extra = sorted(set(labels) - set(keys))
    if extra:
        raise ValidationError(f"record({name!r}): labels for numbers that are not recorded: "
                              f"{extra}")
    kinds = {}
    missing = []
    for k in keys:
        kind = labels.get(k, default_kind)
        if kind is None:
            missing.append(k)
            continue
        if not isinstance(kind, str) or not any(w in kind.lower() for w in KINDS):
            raise ValidationError(f"record({name!r}): the kind of {k!r} is {kind!r}; a kind must "
                                  f"name one of {list(KINDS)} (e.g. 'simulated')")
        kinds[k] = kind
    if missing:
        raise ValidationError(f"record({name!r}): numbers without a kind: {missing}. Pass "
                              f"labels={{key: kind}} or default_kind= with one of {list(KINDS)}")
    return kinds
