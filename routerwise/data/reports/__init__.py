"""Measured runs written by the standard benchmarking tools, read into the kit's schemas.

Users measure their deployments with ``vllm bench serve``, GuideLLM, inference-perf,
genai-perf or the kit's own ``python -m profiling sweep``. :func:`read_report` turns what one of
them wrote into a :class:`Report`:

* ``levels``: one row per load level (one offered rate or concurrency), columns
  :data:`LEVEL_COLUMNS`, every latency **measured** by the tool, in ms;
* ``requests``: the per-request table (columns
  :data:`routerwise.data.measured_runs.REQUEST_COLUMNS`, ``segment`` = the level's ``level``)
  when the tool recorded requests, else ``None``;
* ``sources``: per file the tool, its version, the file's sha256 and how the tool counts
  tokens (tools differ: inference-perf's ``time_per_output_token`` is per stream chunk).

What a report cannot say (the GPU, the architecture, tp) comes from the caller
(``routerwise calibrate --gpu --arch --tp``). Each format lives in its own module of this
package exposing ``read(paths) -> Report``; :data:`FORMATS` maps the CLI's ``--format`` names to
them. A file of the wrong format raises :class:`ReportFormatError` naming what was expected and
what was found.
"""

from __future__ import annotations

import gzip
import importlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataError, ValidationError
from ...io import sha256_file
from ..measured_runs import REQUEST_COLUMNS

__all__ = ["FORMATS", "LEVEL_COLUMNS", "ARRIVALS", "ReportSource", "Report", "ReportFormatError",
           "read_report", "check_levels", "levels_from_requests", "sniff", "file_source",
           "load_json", "check_keys", "request_table", "one_model", "format_error"]

#: ``--format`` name -> module of this package that reads it.
FORMATS = {
    "vllm-bench": "vllm_bench",
    "guidellm": "guidellm",
    "inference-perf": "inference_perf",
    "genai-perf": "genai_perf",
    "kit": "kit",
}

#: How requests arrived at a level: an open-loop process at ``rate_rps`` ("poisson",
#: "constant", "gamma"), a closed loop of ``max_concurrency`` users ("concurrency"), or as fast
#: as possible ("burst": everything sent at once; ``rate_rps`` is inf).
ARRIVALS = ("poisson", "constant", "gamma", "concurrency", "burst")

#: One row per load level. ``rate_rps``: offered rate (NaN for a closed loop); ``achieved_rps``:
#: completed requests per second of the level's measured window; ``max_concurrency``: the load
#: generator's cap on requests in flight (NaN: none); ``warmup_s``: the level's start the tool
#: excluded from its statistics (0: none); ``burstiness``: the gamma shape (1 = Poisson, NaN
#: otherwise). Latencies in ms, NaN where the tool did not record them; tokens are means per
#: successful request.
LEVEL_COLUMNS = ("level", "rate_rps", "achieved_rps", "arrival", "burstiness", "max_concurrency",
                 "warmup_s", "duration_s", "requests_ok", "requests_failed",
                 "prompt_tokens_mean", "output_tokens_mean",
                 "ttft_mean_ms", "ttft_p50_ms", "ttft_p99_ms",
                 "tpot_mean_ms", "tpot_p50_ms", "tpot_p99_ms",
                 "e2e_mean_ms", "e2e_p99_ms")
_INT_COLUMNS = ("level", "requests_ok", "requests_failed")
_TEXT_COLUMNS = ("arrival",)


class ReportFormatError(DataError):
    """A file is not what its ``--format`` says: the message names what was expected and found."""


@dataclass(frozen=True)
class ReportSource:
    """One file a report was read from (all **recorded** by the tool, sha256 computed here)."""

    tool: str  # e.g. "vllm bench serve", "guidellm", "inference-perf", "genai-perf", "routerwise"
    tool_version: str  # as the file records it; "" when it records none
    path: str
    sha256: str
    token_counting: str  # how the tool counts prompt/output tokens and TPOT, in words
    written_from_docs: bool = False  # a fixture written from the documented format, not by the tool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Report:
    """A measured run as a tool wrote it, in the kit's schemas (see the module docstring)."""

    format: str
    model: str  # the served model name the tool recorded
    levels: pd.DataFrame = field(repr=False)
    requests: pd.DataFrame | None = field(default=None, repr=False)
    sources: tuple[ReportSource, ...] = ()
    notes: tuple[str, ...] = ()

    def provenance(self) -> list[dict]:
        return [s.to_dict() for s in self.sources]


def _module(fmt: str):
    if fmt not in FORMATS:
        raise ValidationError(f"unknown report format {fmt!r}: choose one of {sorted(FORMATS)}")
    return importlib.import_module(f"{__name__}.{FORMATS[fmt]}")


def read_report(paths: str | Path | Sequence[str | Path], fmt: str, *, min_levels: int = 2) -> Report:
    """Read one run (one or more files or folders ``paths``) written in format ``fmt``.

    A usable run has one served model, token counts, at least one successful request and at
    least ``min_levels`` load levels (calibration compares levels; pass ``min_levels=1`` to
    inspect a single one): anything else raises :class:`~routerwise.errors.DataError` saying so.
    """
    paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not paths:
        raise ValidationError("read_report needs at least one file or folder")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValidationError(f"no such file or folder: {missing}")
    report = _module(fmt).read(paths)
    levels = check_levels(report.levels)
    shown = ", ".join(str(p) for p in paths)
    if int(levels["requests_ok"].sum()) == 0:
        raise DataError(f"{shown}: no request succeeded at any load level "
                        f"({int(levels['requests_failed'].sum())} failed); there is no latency "
                        f"to read. Check the endpoint and the tool's log, then measure again")
    tokens = levels.loc[levels["requests_ok"] > 0, ["prompt_tokens_mean", "output_tokens_mean"]]
    if not np.isfinite(tokens.to_numpy(float)).all():
        raise DataError(f"{shown}: the {report.format} report lacks prompt or output token "
                        f"counts; the serving model needs both. Rerun the tool so that it "
                        f"records them (e.g. ask the server for usage)")
    if len(levels) < min_levels:
        raise DataError(f"{shown}: {len(levels)} load level(s) (rates "
                        f"{levels['rate_rps'].tolist()} req/s); at least {min_levels} are "
                        f"needed: pass the files of several rates (or concurrencies) of one "
                        f"run together")
    return Report(report.format, report.model, levels,
                  None if report.requests is None else _check_requests(report.requests),
                  report.sources, report.notes)


# ---------------------------------------------------------------------------------------------
# Helpers shared by the format modules


def format_error(path: Path, expected: str, missing: Sequence[str] = (), found: str = "") -> \
        ReportFormatError:
    """The error for a file that is not ``expected``: what it lacks and what it looks like.

    Only key names the reader expected and a sniffed format name are shown, never the file's
    content (a report can carry an endpoint's credentials)."""
    found = found or (f"a file without {list(missing)}" if missing else "something else")
    guess = sniff(path)
    same = guess is not None and expected.startswith(getattr(_module(guess), "_EXPECTED", "\0"))
    hint = f"; it looks like {_LOOKS[guess]}: use --format {guess}" if guess and not same else ""
    return ReportFormatError(f"{path}: expected {expected}, found {found}{hint}")


_LOOKS = {"vllm-bench": "a vllm bench serve result", "guidellm": "a GuideLLM report",
          "inference-perf": "an inference-perf output folder", "genai-perf": "a genai-perf "
          "profile export", "kit": "a profiling sweep folder (python -m profiling sweep)"}


def load_json(source: Path | bytes, expected: str, *, where: Path | None = None):
    """Parse a JSON file (gzipped when its name ends in ``.gz``; or its bytes, read from
    ``where``); one that does not parse is a :class:`ReportFormatError` that shows none of its
    content."""
    where = where if where is not None else source
    try:
        if isinstance(source, bytes):
            return json.loads(source)
        opener = gzip.open if Path(source).name.lower().endswith(".gz") else open
        with opener(source, "rb") as f:
            return json.load(f)
    except (gzip.BadGzipFile, EOFError):
        raise ReportFormatError(f"{where}: expected {expected} (gzipped JSON), found a .gz file "
                                f"that does not decompress") from None
    except UnicodeDecodeError:
        raise ReportFormatError(f"{where}: expected {expected} (JSON), found a file that is not "
                                f"UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ReportFormatError(f"{where}: expected {expected} (JSON), found a file that does "
                                f"not parse as JSON ({e.msg} at line {e.lineno})") from None


def check_keys(path: Path, data, expected: str, required: Sequence[str]) -> dict:
    """``data`` (parsed from ``path``) as a JSON object holding every key of ``required``, else
    a :class:`ReportFormatError` naming what was expected and what is missing."""
    if not isinstance(data, dict):
        raise format_error(path, expected, found=f"a JSON {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise format_error(path, expected, missing)
    return data


def _sniff_json(obj) -> str | None:
    if not isinstance(obj, dict):
        return None
    keys = set(obj)
    if "benchmarks" in keys:
        return "guidellm"
    if {"experiments"} <= keys or {"time_to_first_token", "request_throughput"} <= keys:
        return "genai-perf"
    if {"request_throughput", "completed"} <= keys and ("mean_ttft_ms" in keys or "ttfts" in keys):
        return "vllm-bench"
    if "load_summary" in keys and "successes" in keys:
        return "inference-perf"
    return None


def sniff(path: str | Path) -> str | None:
    """The format a file or folder looks like (a :data:`FORMATS` name), or None."""
    path = Path(path)
    if path.is_dir():
        if (path / "profile.csv").is_file() or (path / "points").is_dir() or \
                (path / "summary.csv").is_file() and (path / "requests.csv").is_file():
            return "kit"
        if any(path.glob("stage_*_lifecycle_metrics.json")):
            return "inference-perf"
        return None
    if path.name.startswith("stage_") and path.name.endswith("lifecycle_metrics.json"):
        return "inference-perf"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".yaml", ".yml")):
        return "guidellm"
    try:
        raw = path.read_bytes()
        return _sniff_json(json.loads(gzip.decompress(raw) if path.name.lower().endswith(".gz")
                                      else raw))
    except (OSError, ValueError, EOFError):
        return None


def file_source(path: Path, tool: str, tool_version: str, token_counting: str, *,
                written_from_docs: bool = False) -> ReportSource:
    return ReportSource(tool, str(tool_version or ""), str(path), sha256_file(path),
                        token_counting, written_from_docs)


def one_model(models, where: str) -> str:
    """The one served model of a report; several (or none) is a :class:`DataError`."""
    names = sorted({str(m) for m in models if m is not None and str(m) != ""})
    if len(names) > 1:
        raise DataError(f"{where}: the files measured several models {names}; a report is one "
                        f"model's run: read each model's files separately")
    if not names:
        raise DataError(f"{where}: no served model name recorded")
    return names[0]


def request_table(run_id: str, rows: pd.DataFrame) -> pd.DataFrame:
    """A :data:`REQUEST_COLUMNS` table from per-request columns ``level``, ``rate_rps``, ``replay``,
    ``start_s`` (any clock in seconds), ``prompt_tokens``, ``output_tokens``, ``ttft_ms``, ``e2e_ms``.

    ``arrival_s`` counts from each replay's first request; TPOT = (E2E - TTFT) / (output - 1),
    NaN for one-token outputs; queue/prefill/decode are not recorded by client tools (NaN)."""
    df = rows.reset_index(drop=True)
    out = pd.DataFrame({"run_id": run_id, "replay": df["replay"].astype("int64"),
                        "segment": df["level"].astype("int64"),
                        "rate_rps": df["rate_rps"].astype(float)})
    start = df["start_s"].astype(float)
    out["arrival_s"] = start - start.groupby(df["replay"]).transform("min")
    out["prompt_tokens"] = df["prompt_tokens"].astype(float)
    out["output_tokens"] = df["output_tokens"].astype(float)
    out["ttft_ms"] = df["ttft_ms"].astype(float)
    out["e2e_ms"] = df["e2e_ms"].astype(float)
    decode = out["output_tokens"] - 1
    out["tpot_ms"] = ((out["e2e_ms"] - out["ttft_ms"]) / decode).where(decode > 0)
    for c in ("queue_ms", "prefill_ms", "decode_ms"):
        out[c] = math.nan
    return out.sort_values(["replay", "arrival_s"], kind="stable").reset_index(drop=True)[
        list(REQUEST_COLUMNS)]


def check_levels(levels: pd.DataFrame) -> pd.DataFrame:
    """The one validator of a level table: columns, types, ranges; sorted by rate then level."""
    missing = [c for c in LEVEL_COLUMNS if c not in levels.columns]
    if missing:
        raise DataError(f"level table lacks columns {missing}")
    df = levels[list(LEVEL_COLUMNS)].copy()
    if df.empty:
        raise DataError("the report has no load level")
    for c in LEVEL_COLUMNS:
        if c in _TEXT_COLUMNS:
            df[c] = df[c].astype(str)
        elif c in _INT_COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="raise").astype("int64")
        else:
            df[c] = pd.to_numeric(df[c], errors="raise").astype(float)
    bad = sorted(set(df["arrival"]) - set(ARRIVALS))
    if bad:
        raise DataError(f"unknown arrival process {bad}: expected one of {ARRIVALS}")
    if df["level"].duplicated().any():
        raise DataError(f"duplicate level numbers {df['level'][df['level'].duplicated()].tolist()}")
    lat = [c for c in LEVEL_COLUMNS if c.endswith("_ms")]
    if (df[lat] < 0).any().any():
        raise DataError("negative latencies in the level table")
    if ((df["requests_ok"] < 0) | (df["requests_failed"] < 0)).any():
        raise DataError("negative request counts in the level table")
    return df.sort_values(["rate_rps", "level"], kind="stable").reset_index(drop=True)


def _check_requests(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"request table lacks columns {missing}")
    lacking = int(df[["prompt_tokens", "output_tokens"]].isna().any(axis=1).sum())
    if lacking:
        raise DataError(f"{lacking} of {len(df)} requests lack prompt or output token counts; "
                        f"the serving model needs both: rerun the tool so that it records them")
    return df[list(REQUEST_COLUMNS)].reset_index(drop=True)


def _pct(v: np.ndarray, q: float) -> float:
    return float(np.percentile(v, q)) if v.size else math.nan


def levels_from_requests(requests: pd.DataFrame, *, arrival: str, failed: dict[int, int] | None = None,
                         max_concurrency: float = math.nan, warmup_s: float = 0.0,
                         burstiness: float = math.nan,
                         rates: dict[int, float] | None = None) -> pd.DataFrame:
    """Per-level statistics computed from a request table (successful requests only).

    ``failed`` maps level -> failed requests (tools keep failures apart); the measured window
    runs from a level's first arrival to its last completion. ``rates`` (level -> offered rate)
    adds a row for each level in it where no request succeeded (``requests_ok`` = 0, NaN
    statistics).
    """
    rows = []
    for seg, g in requests.groupby("segment"):
        ok = g[np.isfinite(g["ttft_ms"].to_numpy(float))]
        ends = ok["arrival_s"] + ok["e2e_ms"] / 1000.0
        span = float(ends.max() - g["arrival_s"].min()) if len(ok) else math.nan
        row = {"level": int(seg), "rate_rps": float(g["rate_rps"].iloc[0]),
               "achieved_rps": len(ok) / span if span and span > 0 else math.nan,
               "arrival": arrival, "burstiness": burstiness, "max_concurrency": max_concurrency,
               "warmup_s": warmup_s, "duration_s": span, "requests_ok": len(ok),
               "requests_failed": int((failed or {}).get(int(seg), 0)),
               "prompt_tokens_mean": float(ok["prompt_tokens"].mean()),
               "output_tokens_mean": float(ok["output_tokens"].mean())}
        for name in ("ttft", "tpot", "e2e"):
            v = ok[f"{name}_ms"].dropna().to_numpy(float)
            row[f"{name}_mean_ms"] = float(v.mean()) if v.size else math.nan
            row[f"{name}_p99_ms"] = _pct(v, 99)
            if name != "e2e":
                row[f"{name}_p50_ms"] = _pct(v, 50)
        rows.append(row)
    seen = {r["level"] for r in rows}
    for seg, rate in sorted((rates or {}).items()):
        if int(seg) not in seen:
            rows.append({**{c: math.nan for c in LEVEL_COLUMNS}, "level": int(seg),
                         "rate_rps": float(rate), "arrival": arrival, "burstiness": burstiness,
                         "max_concurrency": max_concurrency, "warmup_s": warmup_s,
                         "requests_ok": 0, "requests_failed": int((failed or {}).get(int(seg), 0))})
    return pd.DataFrame(rows, columns=list(LEVEL_COLUMNS))
