"""GuideLLM benchmark reports (``guidellm run --output json|yaml``), read as a :class:`~.Report`.

One report holds one benchmark per load level (``benchmarks[]``, e.g. one per ``--rate`` or a
sweep's strategies); several report files are read as one run. Per benchmark the level comes
from the tool's own fields: ``config.strategy`` (``type_``: poisson, constant, concurrent
(``streams``), synchronous (one stream), throughput (everything at once)), ``duration``,
``warmup_duration``, ``metrics.request_totals`` and the successful requests' distributions of
``time_to_first_token_ms``, ``inter_token_latency_ms``, ``request_latency`` (s),
``prompt_token_count`` and ``output_token_count``. GuideLLM's ``time_per_output_token_ms``
counts the first token's wait too (time to the last token / output tokens), so the kit's TPOT
is its ``inter_token_latency_ms`` ((last token - first token) / (output - 1), averaged over
tokens, not requests). ``requests.successful`` gives the request table when the report kept
every request (a ``sample_size`` keeps fewer: then there is none). Files may be gzipped.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pandas as pd
import yaml

from . import LEVEL_COLUMNS, Report, ReportFormatError, file_source, format_error, load_json, one_model, request_table

__all__ = ["read", "TOOL", "TOKEN_COUNTING"]

TOOL = "guidellm"
TOKEN_COUNTING = ("prompt/output tokens: the server's usage when GuideLLM prefers response "
                  "metrics (its default), else its --tokenizer on the text; TPOT = GuideLLM's "
                  "inter_token_latency_ms = (last token - first token) / (output - 1), its "
                  "distribution weighted by tokens; request-table TPOT = (E2E - TTFT) / "
                  "(output - 1)")
_EXPECTED = "a GuideLLM benchmark report (guidellm run --output json or yaml)"


def _load(path: Path) -> dict:
    if path.is_dir():
        raise format_error(path, _EXPECTED, found="a folder")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".yaml", ".yml")):
        try:
            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
            raise ReportFormatError(f"{path}: expected {_EXPECTED}, found a file that does not "
                                    f"parse as YAML ({type(e).__name__})") from None
    elif path.name.lower().endswith(".gz"):
        try:
            data = load_json(gzip.decompress(path.read_bytes()), _EXPECTED, where=path)
        except (OSError, EOFError):
            raise ReportFormatError(f"{path}: expected {_EXPECTED}, found a .gz file that does "
                                    f"not decompress") from None
    else:
        data = load_json(path, _EXPECTED)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise format_error(path, _EXPECTED, ["benchmarks"])
    if not data["benchmarks"]:
        raise ReportFormatError(f"{path}: the GuideLLM report holds no benchmark")
    for b in data["benchmarks"]:
        if not isinstance(b, dict) or not {"config", "metrics", "duration"} <= set(b):
            raise format_error(path, _EXPECTED + " whose benchmarks have config, metrics and "
                               "duration", found="a benchmark without them")
    return data


def _dist(metrics: dict, name: str) -> dict:
    return (metrics.get(name) or {}).get("successful") or {}


def _stat(d: dict, key: str, scale: float = 1.0) -> float:
    v = d.get("mean") if key == "mean" else (d.get("percentiles") or {}).get(key)
    return math.nan if v is None else float(v) * scale


def _arrival(strategy: dict) -> tuple[str, float, float]:
    kind = strategy.get("type_")
    if kind in ("poisson", "constant"):
        return kind, float(strategy["rate"]), math.nan
    if kind == "concurrent":
        return "concurrency", math.nan, float(strategy["streams"])
    if kind == "synchronous":
        return "concurrency", math.nan, 1.0
    if kind == "throughput":
        cap = strategy.get("max_concurrency")
        return "burst", math.inf, math.nan if cap is None else float(cap)
    raise ReportFormatError(f"GuideLLM strategy {kind!r} is not a load level the kit reads "
                            f"(poisson, constant, concurrent, synchronous, throughput)")


def _level(level: int, b: dict) -> dict:
    m = b["metrics"]
    totals = m.get("request_totals") or {}
    arrival, rate, cap = _arrival(b["config"].get("strategy") or {})
    ok, duration = int(totals.get("successful", 0)), float(b["duration"])
    ttft, itl = _dist(m, "time_to_first_token_ms"), _dist(m, "inter_token_latency_ms")
    e2e = _dist(m, "request_latency")
    return {"level": level, "rate_rps": rate,
            "achieved_rps": ok / duration if duration > 0 else math.nan, "arrival": arrival,
            "burstiness": 1.0 if arrival == "poisson" else math.nan, "max_concurrency": cap,
            "warmup_s": float(b.get("warmup_duration") or 0.0), "duration_s": duration,
            "requests_ok": ok, "requests_failed": int(totals.get("errored", 0)),
            "prompt_tokens_mean": _stat(_dist(m, "prompt_token_count"), "mean"),
            "output_tokens_mean": _stat(_dist(m, "output_token_count"), "mean"),
            "ttft_mean_ms": _stat(ttft, "mean"), "ttft_p50_ms": _stat(ttft, "p50"),
            "ttft_p99_ms": _stat(ttft, "p99"), "tpot_mean_ms": _stat(itl, "mean"),
            "tpot_p50_ms": _stat(itl, "p50"), "tpot_p99_ms": _stat(itl, "p99"),
            "e2e_mean_ms": _stat(e2e, "mean", 1000.0), "e2e_p99_ms": _stat(e2e, "p99", 1000.0)}


def _requests(level: int, rate: float, b: dict) -> pd.DataFrame | None:
    rows = (b.get("requests") or {}).get("successful")
    if not isinstance(rows, list) or len(rows) != int(b["metrics"]["request_totals"]["successful"]):
        return None
    return pd.DataFrame({
        "level": level, "replay": level, "rate_rps": rate,
        "start_s": [r["request_start_time"] for r in rows],
        "prompt_tokens": [r.get("prompt_tokens") for r in rows],
        "output_tokens": [r.get("output_tokens") for r in rows],
        "ttft_ms": [r.get("time_to_first_token_ms") for r in rows],
        "e2e_ms": [1000.0 * r["request_latency"] for r in rows]})


def read(paths: list[Path]) -> Report:
    files = [(p, _load(p)) for p in paths]
    where = ", ".join(str(p) for p in paths)
    benchmarks = [b for _, d in files for b in d["benchmarks"]]
    model = one_model([(b["config"].get("backend") or {}).get("model") for b in benchmarks], where)
    rows = [_level(0, b) for b in benchmarks]
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["rate_rps"], rows[i]["max_concurrency"]))
    parts, notes = [], [f"{len(benchmarks)} GuideLLM benchmarks, one level each"]
    for n, i in enumerate(order):
        rows[i]["level"] = n
        parts.append(_requests(n, rows[i]["rate_rps"], benchmarks[i]))
    requests = None
    if all(p is not None for p in parts):
        requests = request_table(f"guidellm {model}", pd.concat(parts, ignore_index=True))
    else:
        notes.append("the report keeps a sample of the requests (sample_size): no request table")
    levels = pd.DataFrame([rows[i] for i in order], columns=list(LEVEL_COLUMNS))
    sources = tuple(file_source(p, TOOL, str((d.get("metadata") or {}).get("guidellm_version", "")),
                                TOKEN_COUNTING) for p, d in files)
    return Report("guidellm", model, levels, requests, sources, tuple(notes))
