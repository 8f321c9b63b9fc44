"""``vllm bench serve --save-result [--save-detailed]`` JSON files, read as a :class:`~.Report`.

One file is one run at one ``--request-rate`` (one level); give the files of several rates
(each as written or gzipped, ``.json.gz``).
Level statistics are the tool's own fields (``completed``, ``failed``, ``duration``,
``request_throughput``, ``mean/median/p99_ttft_ms``, ``..._tpot_ms``; ``..._e2el_ms`` when
``--percentile-metrics`` asked for them). Without ``--save-detailed`` the file still keeps
``latencies`` (all requests), so E2E comes from them when no request failed. With
``--save-detailed`` the file has per-request ``start_times`` (the client's monotonic clock),
``ttfts``, ``latencies``, ``input_lens``, ``output_lens`` and ``errors``: the report then has a
request table (successful requests; each file its own replay on its own clock).

The arrival process: ``--request-rate inf`` sends everything at once ("burst"), or, with
``--max-concurrency``, keeps that many requests in flight ("concurrency"); a finite rate is
Poisson (``--burstiness 1``) or gamma. The file records no vLLM version of its own; a
``--metadata vllm_version=X`` entry, when given, is taken as the tool's version.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataError
from . import LEVEL_COLUMNS, Report, check_keys, file_source, format_error, load_json, one_model, request_table

__all__ = ["read", "TOOL", "TOKEN_COUNTING"]

TOOL = "vllm bench serve"
TOKEN_COUNTING = ("prompt tokens: the server's usage prompt_tokens (else the client's tokenizer "
                  "on the prompt); output tokens: the server's usage completion_tokens (else the "
                  "generated text re-tokenized); TPOT = (E2E - TTFT) / (output - 1) per request "
                  "with more than one output token, the tool's mean/median/p99 over those")
_EXPECTED = "a vllm bench serve result (--save-result JSON)"
_REQUIRED = ("model_id", "request_rate", "completed", "duration", "request_throughput",
             "total_input_tokens", "total_output_tokens", "mean_ttft_ms")
_DETAILS = ("start_times", "ttfts", "latencies", "input_lens", "output_lens", "errors")


def _load(path: Path) -> dict:
    if path.is_dir():
        raise format_error(path, _EXPECTED, found="a folder")
    data = load_json(path, _EXPECTED)
    return check_keys(path, data, _EXPECTED, _REQUIRED)


def _num(v) -> float:
    if v is None:
        return math.nan
    if isinstance(v, str) and v.strip().lower() in ("inf", "infinity"):
        return math.inf
    return float(v)


def _arrival(d: dict) -> tuple[str, float, float, float]:
    """(arrival, offered rate, burstiness, max concurrency) of one run."""
    rate, cap = _num(d["request_rate"]), _num(d.get("max_concurrency"))
    burst = _num(d.get("burstiness", 1.0))
    if math.isinf(rate):
        return ("concurrency", math.nan, math.nan, cap) if math.isfinite(cap) else \
            ("burst", math.inf, math.nan, cap)
    if burst == 1.0:
        return "poisson", rate, 1.0, cap
    return "gamma", rate, burst, cap


def _detailed(d: dict) -> bool:
    return all(isinstance(d.get(k), list) for k in _DETAILS)


def _ok_mask(d: dict) -> np.ndarray:
    return np.array([not e for e in d["errors"]], dtype=bool)


def _e2e(d: dict) -> np.ndarray | None:
    """Successful requests' E2E latencies in ms, when the file says which succeeded."""
    lat = d.get("latencies")
    if not isinstance(lat, list):
        return None
    lat = np.asarray(lat, float) * 1000.0
    if isinstance(d.get("errors"), list):
        return lat[_ok_mask(d)]
    return lat if int(d.get("failed") or 0) == 0 and lat.size == int(d["completed"]) else None


def _level(level: int, d: dict) -> dict:
    arrival, rate, burst, cap = _arrival(d)
    ok = int(d["completed"])
    row = {"level": level, "rate_rps": rate, "achieved_rps": _num(d["request_throughput"]),
           "arrival": arrival, "burstiness": burst, "max_concurrency": cap, "warmup_s": 0.0,
           "duration_s": _num(d["duration"]), "requests_ok": ok,
           "requests_failed": int(d.get("failed") or 0),
           "prompt_tokens_mean": _num(d["total_input_tokens"]) / ok if ok else math.nan,
           "output_tokens_mean": _num(d["total_output_tokens"]) / ok if ok else math.nan}
    for m in ("ttft", "tpot"):
        row[f"{m}_mean_ms"] = _num(d.get(f"mean_{m}_ms"))
        row[f"{m}_p50_ms"] = _num(d.get(f"median_{m}_ms"))
        row[f"{m}_p99_ms"] = _num(d.get(f"p99_{m}_ms"))
    e2e = _e2e(d)
    if "mean_e2el_ms" in d:
        row["e2e_mean_ms"], row["e2e_p99_ms"] = _num(d["mean_e2el_ms"]), _num(d.get("p99_e2el_ms"))
    elif e2e is not None and e2e.size:
        row["e2e_mean_ms"], row["e2e_p99_ms"] = float(e2e.mean()), float(np.percentile(e2e, 99))
    else:
        row["e2e_mean_ms"] = row["e2e_p99_ms"] = math.nan
    return row


def _requests(level: int, rate: float, d: dict) -> pd.DataFrame:
    ok = _ok_mask(d)
    col = {k: np.asarray(d[k], float)[ok] for k in ("start_times", "ttfts", "latencies",
                                                      "input_lens", "output_lens")}
    return pd.DataFrame({"level": level, "replay": level, "rate_rps": rate,
                         "start_s": col["start_times"], "prompt_tokens": col["input_lens"],
                         "output_tokens": col["output_lens"], "ttft_ms": col["ttfts"] * 1000.0,
                         "e2e_ms": col["latencies"] * 1000.0})


def read(paths: list[Path]) -> Report:
    files = [(p, _load(p)) for p in paths]
    where = ", ".join(str(p) for p in paths)
    model = one_model([d["model_id"] for _, d in files], where)
    files.sort(key=lambda f: (_num(f[1]["request_rate"]), _num(f[1].get("max_concurrency"))))
    rows = [_level(i, d) for i, (_, d) in enumerate(files)]
    levels = pd.DataFrame(rows, columns=list(LEVEL_COLUMNS))
    detailed = [_detailed(d) for _, d in files]
    notes = [f"{len(files)} vllm bench serve runs, one level each"]
    requests = None
    if all(detailed):
        parts = [_requests(i, rows[i]["rate_rps"], d) for i, (_, d) in enumerate(files)]
        requests = request_table(f"vllm-bench {model}", pd.concat(parts, ignore_index=True))
        for i, part in enumerate(parts):
            if len(part) != rows[i]["requests_ok"]:
                raise DataError(f"{files[i][0]}: {len(part)} requests without an error but "
                                f"completed={rows[i]['requests_ok']}; the file is inconsistent")
    elif any(detailed):
        notes.append("not every file has per-request details (--save-detailed): no request "
                     "table")
    for (p, d), row in zip(files, rows):
        if math.isnan(row["e2e_mean_ms"]) and int(d["completed"]):
            notes.append(f"{p.name}: no E2E (failed requests and no per-request errors)")
    sources = tuple(file_source(p, TOOL, str(d.get("vllm_version", "")), TOKEN_COUNTING)
                    for p, d in files)
    return Report("vllm-bench", model, levels, requests, sources, tuple(notes))
