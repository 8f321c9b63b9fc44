"""genai-perf's ``profile_export_genai_perf.json`` files, read as a :class:`~.Report`.

``genai-perf profile`` runs one load level per call (``--request-rate`` or ``--concurrency``)
and writes, in that call's artifact folder, ``profile_export.json`` (perf_analyzer's raw
per-request timestamps, no token counts) and ``profile_export_genai_perf.json`` (the
statistics and the run's ``input_config``). Give those JSON files or their folders, one per
level. The statistics are genai-perf's: ``time_to_first_token``, ``inter_token_latency``
(per request (latency - TTFT) / (output - 1): the kit's TPOT), ``request_latency`` (E2E), each
with ``avg`` and ``p50``/``p99`` in ms; ``request_count``, ``request_throughput``;
``input_sequence_length`` / ``output_sequence_length`` (genai-perf's tokenizer on the prompt
and the streamed text). genai-perf keeps no failed-request count and no duration in this file:
``requests_failed`` is 0 and ``duration_s`` = count / throughput (derived). A ``--request-rate``
level is perf_analyzer's default constant-interval schedule; ``--concurrency`` is a closed loop.
No request table: the raw export has no token counts. The file records no genai-perf version.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from . import LEVEL_COLUMNS, Report, check_keys, file_source, format_error, load_json, one_model

__all__ = ["read", "TOOL", "TOKEN_COUNTING"]

TOOL = "genai-perf"
TOKEN_COUNTING = ("input/output sequence lengths: genai-perf's tokenizer (--tokenizer) on the "
                  "prompt and on the streamed output text; TPOT = genai-perf's "
                  "inter_token_latency = (request latency - TTFT) / (output tokens - 1)")
_EXPECTED = "genai-perf's profile_export_genai_perf.json"
_REQUIRED = ("time_to_first_token", "request_latency", "request_throughput", "request_count",
             "input_sequence_length", "output_sequence_length", "input_config")


def _file(path: Path) -> Path:
    if path.is_dir():
        found = sorted(path.glob("*_genai_perf.json"))
        if len(found) != 1:
            raise format_error(path, _EXPECTED + " (one per level folder)",
                               found=f"{len(found)} *_genai_perf.json files in the folder")
        return found[0]
    return path


def _load(path: Path) -> dict:
    data = load_json(path, _EXPECTED)
    if isinstance(data, dict) and "experiments" in data and "request_latency" not in data:
        raise format_error(path, _EXPECTED, found="perf_analyzer's raw profile export (no token "
                           "counts); give the *_genai_perf.json file beside it")
    return check_keys(path, data, _EXPECTED, _REQUIRED)


def _stat(d: dict, metric: str, key: str) -> float:
    v = (d.get(metric) or {}).get(key)
    return math.nan if v is None else float(v)


def _level(level: int, d: dict) -> dict:
    stimulus = ((d["input_config"].get("perf_analyzer") or {}).get("stimulus") or {})
    if "concurrency" in stimulus:
        arrival, rate, cap = "concurrency", math.nan, float(stimulus["concurrency"])
    else:
        arrival, rate, cap = "constant", float(stimulus.get("request_rate", math.nan)), math.nan
    count, tput = _stat(d, "request_count", "avg"), _stat(d, "request_throughput", "avg")
    return {"level": level, "rate_rps": rate, "achieved_rps": tput, "arrival": arrival,
            "burstiness": math.nan, "max_concurrency": cap, "warmup_s": 0.0,
            "duration_s": count / tput if tput > 0 else math.nan,
            "requests_ok": int(count), "requests_failed": 0,
            "prompt_tokens_mean": _stat(d, "input_sequence_length", "avg"),
            "output_tokens_mean": _stat(d, "output_sequence_length", "avg"),
            "ttft_mean_ms": _stat(d, "time_to_first_token", "avg"),
            "ttft_p50_ms": _stat(d, "time_to_first_token", "p50"),
            "ttft_p99_ms": _stat(d, "time_to_first_token", "p99"),
            "tpot_mean_ms": _stat(d, "inter_token_latency", "avg"),
            "tpot_p50_ms": _stat(d, "inter_token_latency", "p50"),
            "tpot_p99_ms": _stat(d, "inter_token_latency", "p99"),
            "e2e_mean_ms": _stat(d, "request_latency", "avg"),
            "e2e_p99_ms": _stat(d, "request_latency", "p99")}


def read(paths: list[Path]) -> Report:
    files = [(f, _load(f)) for f in (_file(p) for p in paths)]
    where = ", ".join(str(p) for p in paths)
    model = one_model([m for _, d in files for m in d["input_config"].get("model_names") or []],
                      where)
    rows = [_level(0, d) for _, d in files]
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["rate_rps"], rows[i]["max_concurrency"]))
    for n, i in enumerate(order):
        rows[i]["level"] = n
    levels = pd.DataFrame([rows[i] for i in order], columns=list(LEVEL_COLUMNS))
    sources = tuple(file_source(f, TOOL, "", TOKEN_COUNTING,
                                written_from_docs="written_from_docs" in d) for f, d in files)
    notes = [f"{len(files)} genai-perf runs, one level each; genai-perf records no failed "
             f"requests and no duration here (duration_s = count / throughput)"]
    notes += [f"{f}: {d['written_from_docs']}" for f, d in files if "written_from_docs" in d]
    return Report("genai-perf", model, levels, None, sources, tuple(notes))
