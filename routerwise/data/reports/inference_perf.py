"""inference-perf's output folder, read as a :class:`~.Report`.

Give the folder (its ``local_storage.path``): one level per ``stage_<i>_lifecycle_metrics.json``
(the stage's ``load_summary``: ``requested_rate``, ``count``; ``benchmark_time_seconds``;
``successes``: latencies in seconds, ``throughput.requests_per_sec``, ``prompt_tokens``,
``output_tokens``; ``failures.count``), the run's ``config.yaml`` (the served model, the load
type: poisson, constant or concurrent) and, when the run set ``per_request: true``,
``per_request_lifecycle_metrics.json`` (or gzipped, ``.json.gz``; per request ``start_time``, ``end_time``,
``info.response_metrics.output_token_times``, ``server_usage`` and ``error``). Stages run one after
another, so requests are assigned to stages in start order by each stage's ``count``.

inference-perf's ``time_per_output_token`` is per stream chunk (the gap between chunks divided
by the chunk's tokens), not per token of a request: the kit's TPOT is derived as (E2E - TTFT) /
(output - 1) per request when the per-request records are there, else from the stage means
((mean E2E - mean TTFT) / (mean output - 1), exact only for fixed output lengths; no
percentiles). Token counts are the server's usage (per request ``server_usage``; the stages'
``output_tokens``), the client's count where the server gave none (per request, inference-perf's
``output_tokens`` re-tokenizes the text: it can differ from the server's). The files record no inference-perf version.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ...errors import DataError
from . import LEVEL_COLUMNS, Report, ReportFormatError, file_source, format_error, load_json, one_model, request_table

__all__ = ["read", "TOOL", "TOKEN_COUNTING"]

TOOL = "inference-perf"
TOKEN_COUNTING = ("prompt tokens: server usage where available, else the client's tokenizer; "
                  "output tokens: inference-perf's output_tokens (server usage, client count "
                  "where missing); its time_per_output_token is per stream chunk, so TPOT = "
                  "(E2E - TTFT) / (output - 1) derived here from latency and output tokens")
_EXPECTED = ("an inference-perf output folder (stage_<i>_lifecycle_metrics.json, config.yaml, "
             "optionally per_request_lifecycle_metrics.json, gzipped or not)")
_STAGE = re.compile(r"stage_(\d+)_lifecycle_metrics\.json$")
_ARRIVALS = {"poisson": "poisson", "constant": "constant", "concurrent": "concurrency"}


def _folder(path: Path) -> Path:
    if path.is_file() and _STAGE.search(path.name):
        path = path.parent
    if not path.is_dir() or not any(_STAGE.search(p.name) for p in path.iterdir()):
        raise format_error(path, _EXPECTED, found="no stage_<i>_lifecycle_metrics.json")
    return path


def _stage(path: Path) -> dict:
    d = load_json(path, "an inference-perf stage_<i>_lifecycle_metrics.json")
    if not isinstance(d, dict) or not {"load_summary", "successes", "failures"} <= set(d):
        raise format_error(path, "an inference-perf stage_<i>_lifecycle_metrics.json",
                           ["load_summary", "successes", "failures"])
    return d


def _config(folder: Path) -> dict:
    path = folder / "config.yaml"
    if not path.is_file():
        raise DataError(f"{folder}: no config.yaml beside the stage files; inference-perf "
                        f"writes it there and it names the served model and the load type")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ReportFormatError(f"{path}: expected inference-perf's config.yaml, found a file "
                                f"that does not parse as YAML") from None
    if not isinstance(cfg, dict):
        raise format_error(path, "inference-perf's config.yaml", found="no mapping")
    return cfg


def _s(d: dict | None, key: str, scale: float = 1000.0) -> float:
    v = (d or {}).get(key)
    return math.nan if v is None else float(v) * scale


def _level(level: int, d: dict, load: dict, stage_cfg: dict) -> dict:
    ok = d["successes"]
    lat = ok.get("latency") or {}
    arrival = _ARRIVALS.get(str(load.get("type", "constant")).lower())
    if arrival is None:
        raise ReportFormatError(f"inference-perf load type {load.get('type')!r} is not a load "
                                f"level the kit reads ({sorted(_ARRIVALS)})")
    rate = float(d["load_summary"].get("requested_rate") or math.nan)
    cap = math.nan
    if arrival == "concurrency":
        rate, cap = math.nan, float(stage_cfg.get("concurrency_level") or math.nan)
    ttft, e2e = lat.get("time_to_first_token"), lat.get("request_latency")
    out = _s(ok.get("output_tokens"), "mean", 1.0)
    return {"level": level, "rate_rps": rate,
            "achieved_rps": _s(ok.get("throughput"), "requests_per_sec", 1.0),
            "arrival": arrival, "burstiness": 1.0 if arrival == "poisson" else math.nan,
            "max_concurrency": cap, "warmup_s": 0.0,
            "duration_s": float(d.get("benchmark_time_seconds") or math.nan),
            "requests_ok": int(ok.get("count") or 0),
            "requests_failed": int((d["failures"] or {}).get("count") or 0),
            "prompt_tokens_mean": _s(ok.get("prompt_tokens"), "mean", 1.0),
            "output_tokens_mean": out,
            "ttft_mean_ms": _s(ttft, "mean"), "ttft_p50_ms": _s(ttft, "median"),
            "ttft_p99_ms": _s(ttft, "p99"),
            "tpot_mean_ms": (_s(e2e, "mean") - _s(ttft, "mean")) / (out - 1) if out > 1 else math.nan,
            "tpot_p50_ms": math.nan, "tpot_p99_ms": math.nan,
            "e2e_mean_ms": _s(e2e, "mean"), "e2e_p99_ms": _s(e2e, "p99")}


def _records(path: Path, counts: list[int], rates: list[float]) -> pd.DataFrame:
    recs = load_json(path, "inference-perf's per_request_lifecycle_metrics.json")
    if not isinstance(recs, list):
        raise format_error(path, "inference-perf's per_request_lifecycle_metrics.json (a list)",
                           found="no list")
    recs = sorted(recs, key=lambda r: float(r["start_time"]))
    if len(recs) != sum(counts):
        raise DataError(f"{path}: {len(recs)} request records, but the stages sent "
                        f"{sum(counts)} ({counts}); the folder mixes runs")
    stage = np.repeat(np.arange(len(counts)), counts)
    rows = []
    for i, r in enumerate(recs):
        if r.get("error"):
            continue
        info = r.get("info") or {}
        resp = info.get("response_metrics") or {}
        times = resp.get("output_token_times") or resp.get("chunk_times") or []
        usage = resp.get("server_usage") or {}
        prompt = usage.get("prompt_tokens", ((info.get("request_metrics") or {}).get("text") or {})
                           .get("input_tokens", info.get("input_tokens")))
        rows.append({"level": int(stage[i]), "replay": 0, "rate_rps": rates[stage[i]],
                     "start_s": float(r["start_time"]), "prompt_tokens": prompt,
                     "output_tokens": usage.get("completion_tokens", resp.get("output_tokens")),
                     "ttft_ms": 1000.0 * (times[0] - r["start_time"]) if times else math.nan,
                     "e2e_ms": 1000.0 * (r["end_time"] - r["start_time"])})
    return pd.DataFrame(rows, columns=["level", "replay", "rate_rps", "start_s", "prompt_tokens",
                                       "output_tokens", "ttft_ms", "e2e_ms"])


def read(paths: list[Path]) -> Report:
    if len(paths) != 1:
        raise DataError(f"inference-perf: give one output folder (one run, its stages are the "
                        f"levels), got {len(paths)} paths")
    folder = _folder(paths[0])
    cfg = _config(folder)
    model = one_model([(cfg.get("server") or {}).get("model_name")], str(folder))
    load = cfg.get("load") or {}
    stage_files = sorted((p for p in folder.iterdir() if _STAGE.search(p.name)),
                         key=lambda p: int(_STAGE.search(p.name).group(1)))
    stages = [_stage(p) for p in stage_files]
    stage_cfgs = list(load.get("stages") or [])
    rows = [_level(i, d, load, stage_cfgs[i] if i < len(stage_cfgs) else {})
            for i, d in enumerate(stages)]
    per_request = next((f for f in (folder / "per_request_lifecycle_metrics.json",
                                    folder / "per_request_lifecycle_metrics.json.gz")
                        if f.is_file()), folder / "per_request_lifecycle_metrics.json")
    requests, notes = None, [f"{len(stages)} inference-perf stages, one level each"]
    files = [folder / "config.yaml", *stage_files]
    if per_request.is_file():
        files.append(per_request)
        counts = [int(d["load_summary"].get("count") or 0) for d in stages]
        raw = _records(per_request, counts, [r["rate_rps"] for r in rows])
        requests = request_table(f"inference-perf {model}", raw)
        for row in rows:  # the kit's TPOT from each request's latency and output tokens
            t = requests.loc[requests["segment"] == row["level"], "tpot_ms"].dropna().to_numpy()
            if t.size:
                row.update(tpot_mean_ms=float(t.mean()), tpot_p50_ms=float(np.percentile(t, 50)),
                           tpot_p99_ms=float(np.percentile(t, 99)))
    else:
        notes.append("no per-request records: TPOT is derived from the stage means "
                     "((E2E - TTFT) / (output - 1)), without percentiles")
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["rate_rps"], rows[i]["max_concurrency"]))
    levels = pd.DataFrame([rows[i] for i in order], columns=list(LEVEL_COLUMNS))
    sources = tuple(file_source(p, TOOL, "", TOKEN_COUNTING) for p in files)
    return Report("inference-perf", model, levels, requests, sources, tuple(notes))
