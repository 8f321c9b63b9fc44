"""The kit's own ``python -m profiling sweep`` output, read as a :class:`~.Report`.

A sweep folder holds ``profile.csv`` and, per finished load point,
``points/<model>/<curve>/load-<rps>rps/`` with ``point.json`` (settings), ``requests.csv`` (one
row per request, written by ``profiling.loadgen``) and ``summary.csv`` (the profile row, whose
``provenance`` JSON records the arrival process and the client's concurrency cap). Give the
sweep folder, one curve's folder or point folders; a folder holding several curves (other tp,
compute share or endpoint) must be narrowed to one curve's folder.

Each load point ran its own Poisson schedule on its own clock, so each level is its own
``replay`` with ``arrival_s`` from its first send. Token counts are the server's ``usage``
(``tokens_from_usage``); where a server sent none, the loader counted text chunks and the
report's notes say so. TPOT in the request table is (E2E - TTFT) / (output - 1): it includes the
wait for ``[DONE]`` after the last token, which ``summary.csv``'s TPOT (last token - first
token) leaves out. Failed points (``failed-*`` folders, no ``summary.csv``) are not read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ...errors import DataError
from ...io import read_csv_checked
from .. import latency_table
from . import Report, file_source, format_error, levels_from_requests, one_model, request_table

__all__ = ["read", "TOOL", "TOKEN_COUNTING"]

TOOL = "routerwise profiling sweep"
TOKEN_COUNTING = ("prompt and output tokens from the server's usage record (the model's "
                  "tokenizer); a request without one counts its text chunks "
                  "(tokens_from_usage=False). TPOT per request = (E2E - TTFT) / (output - 1)")
_EXPECTED = "a profiling sweep folder (profile.csv and points/<model>/<curve>/load-<rps>rps/)"
# profiling.loadgen.REQUEST_COLUMNS that this reader uses (routerwise never imports profiling)
_REQUEST_COLUMNS = ("send_s", "ttft_ms", "e2e_ms", "prompt_tokens", "completion_tokens",
                    "tokens_from_usage", "ok")


def _points(path: Path) -> list[Path]:
    if path.is_file():
        if path.name not in ("profile.csv", "summary.csv", "requests.csv", "point.json"):
            raise format_error(path, _EXPECTED, found="a file")
        path = path.parent
    if (path / "summary.csv").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("**/summary.csv")
                   if p.parent.name.startswith("load-")
                   and not any(q.name.startswith("failed-") for q in p.parents))
    if not found:
        raise format_error(path, _EXPECTED, found="no finished load point (no "
                           "load-<rps>rps/summary.csv under it)")
    return found


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("true", "1", "yes")


def read(paths: list[Path]) -> Report:
    points = sorted({p for path in paths for p in _points(path)})
    curves = sorted({p.parent for p in points})
    summaries = {p: latency_table.read_table(p / "summary.csv") for p in points}
    where = ", ".join(str(p) for p in paths)
    model = one_model([s["model"].iloc[0] for s in summaries.values()], where)
    if len(curves) > 1:
        raise DataError(f"{where} holds {len(curves)} curves of {model} (other tp, compute share "
                        f"or endpoint): {[c.name for c in curves]}; pass one curve's folder "
                        f"(points/<model>/<curve>)")
    order = sorted(points, key=lambda p: float(summaries[p]["load_rps"].iloc[0]))
    parts, failed, caps, arrivals, chunked, versions, files = [], {}, set(), set(), 0, set(), []
    for level, point in enumerate(order):
        summary = summaries[point]
        prov = json.loads(summary["provenance"].iloc[0] or "{}")
        arrivals.add(str(prov.get("arrivals", "")).split("(")[0])
        caps.add(prov.get("concurrency_cap"))
        versions.add(str(prov.get("tools", {}).get("routerwise", "")))
        req = read_csv_checked(point / "requests.csv", _REQUEST_COLUMNS, "profiling request table")
        ok = req["ok"].map(_truthy)
        failed[level] = int((~ok).sum())
        good = req[ok]
        chunked += int((~good["tokens_from_usage"].map(_truthy)).sum())
        parts.append(pd.DataFrame({
            "level": level, "replay": level, "rate_rps": float(summary["load_rps"].iloc[0]),
            "start_s": good["send_s"], "prompt_tokens": good["prompt_tokens"],
            "output_tokens": good["completion_tokens"], "ttft_ms": good["ttft_ms"],
            "e2e_ms": good["e2e_ms"]}))
        files += [point / "requests.csv", point / "summary.csv"]
    if arrivals != {"poisson"}:
        raise DataError(f"{where}: arrival processes {sorted(arrivals)} in the points' "
                        f"provenance; a profiling sweep sends Poisson arrivals ('poisson(...)')")
    version = ", ".join(sorted(versions - {""}))  # routerwise's version, as the rows record it
    sources = [file_source(f, TOOL, version, TOKEN_COUNTING) for f in files]
    cap = caps.pop() if len(caps) == 1 else None
    requests = request_table(f"{model} {curves[0].name}", pd.concat(parts, ignore_index=True))
    levels = levels_from_requests(requests, arrival="poisson", failed=failed, burstiness=1.0,
                                  max_concurrency=float(cap) if cap is not None else math.nan,
                                  rates={i: float(summaries[p]["load_rps"].iloc[0])
                                         for i, p in enumerate(order)})
    notes = [f"measured by the kit's load generator at {len(order)} Poisson rates; each level "
             f"is its own replay (its own clock)"]
    if chunked:
        notes.append(f"{chunked} requests had no usage record: their output tokens are text "
                     f"chunks, not tokens")
    return Report("kit", model, levels, requests, tuple(sources), tuple(notes))
