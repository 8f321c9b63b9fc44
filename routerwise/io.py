"""Atomic file writes, checksums and safe file names.

Every file the kit writes goes through :func:`atomic_write`: the bytes land in a temporary
file in the same folder and are renamed over the target only once complete, so an interrupted
run never leaves a half-written table and never destroys the previous good copy. A file or
folder name made from a user string (a model name, a GPU label) goes through
:func:`safe_name`, so no such string can point a write outside its folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["blank", "atomic_path", "atomic_write", "atomic_write_with", "write_json", "sha256_file",
           "read_csv_checked", "safe_name", "json_safe", "cache_write"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The file gets ``mode`` when given, else the mode any new file gets (0666 less the umask):
    the temporary file's own 0600 would otherwise make results unreadable to a group.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, (0o666 & ~_umask()) if mode is None else mode)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` (e.g. ``df.to_csv``) and move the result into place."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_json(path: str | os.PathLike, obj, **kw) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable, **kw) + "\n")


def _jsonable(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def json_safe(obj):
    """``obj`` with every NaN or infinite float (also inside dicts, lists, tuples and numpy
    values) replaced by None, so that ``json.dumps(..., allow_nan=False)`` writes strict JSON
    (``NaN`` and ``Infinity`` are not JSON: ``JSON.parse`` rejects them)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):   # numpy scalar/array
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# Cache folders already reported unwritable in this process: one warning each, not one per file.
_UNWRITABLE_CACHES: set[str] = set()


def cache_write(cache_root: str | os.PathLike, write: Callable[[], object]) -> bool:
    """Run ``write()`` (it writes one or more files under ``cache_root``), best effort.

    A cache only saves recomputation, so a read-only, full or otherwise unwritable cache
    folder must not cost the result being computed: an ``OSError`` is caught, the first one
    per folder warns (``RuntimeWarning``: what failed and how to fix it), and False is
    returned; the caller keeps what it computed in memory."""
    try:
        write()
        return True
    except OSError as e:
        root = str(cache_root)
        if root not in _UNWRITABLE_CACHES:
            _UNWRITABLE_CACHES.add(root)
            warnings.warn(f"cannot write to the cache folder {root} ({e.strerror or e}"
                          f"{': ' + str(e.filename) if e.filename else ''}); results are "
                          f"computed but not cached, so the next run computes them again. "
                          f"Point ROUTERWISE_CACHE_DIR at a writable folder with free space "
                          f"to cache them", RuntimeWarning, stacklevel=2)
        return False


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, *, key: str | None = None, digest_chars: int = 10,
              max_chars: int = 60) -> str:
    """A single path component for ``text``: a readable slug plus a digest of the full string.

    The slug keeps letters, digits, ``.``, ``_`` and ``-`` (other runs become ``_``; leading
    and trailing ``._-`` are dropped, so it is never hidden, option-like, ``.`` or ``..``) and
    is cut at ``max_chars``; the sha256 digest of ``key`` (default: ``text``) is appended, so
    different strings never share a name, also on case-insensitive file systems.
    ``safe_name("llama-3.1-8b")`` is ``"llama-3.1-8b-<digest>"``.
    """
    text = str(text)
    slug = _UNSAFE.sub("_", text).strip("._-")[:max_chars].rstrip("._-") or "_"
    digest = hashlib.sha256((text if key is None else key).encode("utf-8",
                                                                  "surrogatepass")).hexdigest()
    return f"{slug}-{digest[:digest_chars]}"


def blank(values):
    """True where a text column (an error message, say) of a pandas table is empty. Read from
    CSV, a column whose values are all empty is float NaN, so NaN counts as empty
    (``fillna("")`` on a float column is deprecated in pandas)."""
    return values.isna() | (values.astype(str) == "")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_csv_checked(path: str | os.PathLike, columns, what: str):
    """Read a CSV (empty cells as NaN) that must have ``columns``; DataError names the file."""
    import pandas as pd

    from .errors import DataError
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no {what} at {path}")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path} is not a {what}: it lacks {missing}")
    return df
