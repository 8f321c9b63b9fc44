"""Live check: send a plan's workload through the router to real engines and measure what it
predicted.

A plan (``routerwise solve --json``) predicts each routed model's latency at its planned load
(``models[i].latency_ms`` at ``arrival_rate_rps * fraction``) and the system's SLO value
(``latency_ms``); the kit's replay (the plan's ``replay`` record,
:func:`routerwise.planning.consistency.replay_record`) simulates it. This module measures it:

* :func:`live_workload`: the plan's workload, the problem's prompts in shuffled rounds (seeded)
  at Poisson arrivals of the planned rate (or another), for ``duration_s`` seconds;
* :func:`send_workload`: an open-loop streaming client (httpx, one task per request, each
  sent at its scheduled time whatever earlier ones are doing) that records per request the
  time to first token, the end-to-end time, the token counts, errors and the model that served
  it: the router's ``x-routerwise-model`` response header when it sends one, else the
  ``model`` field of the streamed chunks (an engine names the model it served), else the model
  the client routed to itself (direct calls);
* :func:`measured_record`: one record of the same keys as ``replay_record``, labelled
  measured: the ``replayed_*`` values are the live ones, per model and for the system, plus the
  live routed fractions, the achieved rate, errors by kind and the kit's replay beside them.

Direct calls (:func:`direct_resolver`: the client routes with the plan's router and calls
the engines itself) at the same schedule give the router's added TTFT
(:func:`router_overhead`). Everything measured here is labelled measured; the plan's values
are modelled (its curves), the replay's simulated.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ValidationError
from ..uncertainty import half_width_95

__all__ = ["LivePrompt", "LiveRequest", "ROUTED_MODEL_HEADER", "REQUEST_COLUMNS",
           "prompts_from_matrix", "live_workload", "send_workload", "router_resolver",
           "direct_resolver", "measured_record", "overhead_summary", "router_overhead", "read_plan_record",
           "MEASURED_KIND", "block_means", "gap_resolution"]

# The response header a router may add to name the model it routed a request to.
ROUTED_MODEL_HEADER = "x-routerwise-model"
MEASURED_KIND = "measured (live engines) vs modelled (plan's curves)"
REQUEST_COLUMNS = ("request_id", "prompt_id", "scheduled_s", "send_s", "first_token_s", "end_s",
                   "ttft_ms", "e2e_ms", "tpot_ms", "prompt_tokens", "completion_tokens",
                   "http_status", "ok", "error_kind", "error_message", "model", "routed_by")


@dataclass(frozen=True)
class LivePrompt:
    """One prompt of the workload: its id in the score table, its text, its output length."""

    prompt_id: str
    text: str
    max_tokens: int

    def __post_init__(self):
        if int(self.max_tokens) < 1:
            raise ValidationError(f"prompt {self.prompt_id!r}: max_tokens must be >= 1, got "
                                  f"{self.max_tokens!r}")


@dataclass(frozen=True)
class LiveRequest:
    """One request of a live run: when to send it (s from the start) and what."""

    request_id: int
    scheduled_s: float
    prompt: LivePrompt


def prompts_from_matrix(qm, *, filler: str = "word") -> tuple[LivePrompt, ...]:
    """The workload's prompts from a score table (:class:`routerwise.data.scores.QualityMatrix`).

    A prompt's text is the table's ``prompt`` when it has one (not just its id), else ``filler`` repeated to the
    prompt's token count (the mean over models of ``prompt_tokens``; random-weight models care
    only about lengths); its ``max_tokens`` is the mean over models of ``output_tokens``
    (rounded, at least 1).
    """
    n = len(qm.prompt_ids)
    if qm.completion_tokens is None:
        raise ValidationError("the score table has no output_tokens: a live check needs each "
                              "prompt's output length (add an output_tokens column)")
    texts = tuple(qm.prompts) if qm.prompts else ("",) * n
    out = []
    for j, pid in enumerate(qm.prompt_ids):
        text = texts[j] if j < len(texts) else ""
        if not text or text == pid:   # a table without a prompt column names prompts by id
            if qm.prompt_tokens is None:
                raise ValidationError(f"prompt {pid!r} has no text and the table no "
                                      f"prompt_tokens: give a prompt column or token counts")
            words = max(1, int(round(float(np.mean(qm.prompt_tokens[j])))))
            text = " ".join([filler] * words)
        out.append(LivePrompt(str(pid), text,
                              max(1, int(round(float(np.mean(qm.completion_tokens[j])))))))
    return tuple(out)


def live_workload(prompts: Sequence[LivePrompt], rate_rps: float, duration_s: float, *,
                  seed: int = 0) -> list[LiveRequest]:
    """Poisson arrivals at ``rate_rps`` during ``duration_s`` seconds carrying the plan's
    workload, the uniform mix of the problem's prompts: the prompts in rounds, each round a
    fresh random order of all of them, so every prompt is sent equally often (to within one)
    and the routed fractions can match the plan's without sampling noise. Seeded: the same
    arguments give the same requests."""
    if not (isinstance(rate_rps, (int, float)) and math.isfinite(rate_rps) and rate_rps > 0):
        raise ValidationError(f"rate must be a positive number of requests/s, got {rate_rps!r}")
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s)
            and duration_s > 0):
        raise ValidationError(f"duration must be a positive number of seconds, got "
                              f"{duration_s!r}")
    if not prompts:
        raise ValidationError("the workload has no prompts")
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate_rps, size=int(rate_rps * duration_s * 2 + 50))
    times = np.cumsum(gaps)
    while times[-1] < duration_s:
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate_rps,
                                                                             size=100))])
    times = times[times <= duration_s]
    rounds = -(-times.size // len(prompts))
    picks = np.concatenate([rng.permutation(len(prompts)) for _ in range(rounds)])[:times.size]
    return [LiveRequest(k, float(t), prompts[int(j)]) for k, (t, j) in enumerate(zip(times, picks))]


# ----------------------------------------------------------------------------- the client

# A resolver says where one request goes: (base URL, model name to send, model routed to or
# None when the server decides).
Resolver = Callable[[LivePrompt], tuple[str, str, "str | None"]]


def router_resolver(router_url: str, model: str = "routerwise") -> Resolver:
    """Send every request to the router at ``router_url``; it picks the model (the ``model``
    field sent is replaced by the router)."""
    base = router_url.rstrip("/")
    return lambda prompt: (base, model, None)


def direct_resolver(choose: Callable[[str], str],
                    endpoints: Mapping[str, Sequence[str]]) -> Resolver:
    """Route in the client with ``choose(prompt text) -> model`` (the plan's router) and call
    that model's endpoint directly (several: in turn). The baseline of :func:`router_overhead`."""
    eps = {m: [u.rstrip("/") for u in urls] for m, urls in endpoints.items()}
    turn = dict.fromkeys(eps, 0)

    def resolve(prompt: LivePrompt):
        model = choose(prompt.text)
        if model not in eps or not eps[model]:
            raise ValidationError(f"the plan routes to {model!r}, which has no endpoint; give "
                                  f"--endpoint {model}=URL")
        urls = eps[model]
        url = urls[turn[model] % len(urls)]
        turn[model] += 1
        return url, model, model
    return resolve


def _row(req: LiveRequest) -> dict:
    nan = float("nan")
    return {"request_id": req.request_id, "prompt_id": req.prompt.prompt_id,
            "scheduled_s": req.scheduled_s, "send_s": nan, "first_token_s": nan, "end_s": nan,
            "ttft_ms": nan, "e2e_ms": nan, "tpot_ms": nan, "prompt_tokens": nan,
            "completion_tokens": nan, "http_status": 0, "ok": False, "error_kind": "not_sent",
            "error_message": "", "model": None, "routed_by": ""}


def _has_tokens(choice) -> bool:
    if not isinstance(choice, dict):
        return False
    text = choice.get("text")
    if text is None and isinstance(choice.get("delta"), dict):
        text = choice["delta"].get("content")
    ids = choice.get("token_ids")
    return bool(text) or (isinstance(ids, list) and len(ids) > 0)


async def _one(client, req: LiveRequest, resolve: Resolver, row: dict, t0: float, *,
               api: str, body_extra: Mapping, headers: Mapping, timeout_s: float) -> None:
    import httpx
    await asyncio.sleep(max(0.0, req.scheduled_s - (time.perf_counter() - t0)))
    url, send_model, routed = resolve(req.prompt)
    body = {"model": send_model, "max_tokens": int(req.prompt.max_tokens), "stream": True,
            "stream_options": {"include_usage": True}, "temperature": 0.0, **body_extra}
    if api == "chat":
        path, body["messages"] = "/v1/chat/completions", [{"role": "user",
                                                            "content": req.prompt.text}]
    else:
        path, body["prompt"] = "/v1/completions", req.prompt.text
    row["send_s"] = time.perf_counter() - t0
    row["error_kind"] = "cancelled"
    if routed is not None:
        row["model"], row["routed_by"] = routed, "client"
    last = float("nan")
    chunks = 0
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url + path, json=body, headers=headers) as resp:
                row["http_status"] = resp.status_code
                named = resp.headers.get(ROUTED_MODEL_HEADER)
                if named and routed is None:
                    row["model"], row["routed_by"] = named, "header"
                if resp.status_code != 200:
                    text = (await resp.aread())[:300].decode("utf-8", "replace")
                    row["error_kind"], row["error_message"] = "http_status", \
                        f"HTTP {resp.status_code}: {text}"
                    return
                done, usage = False, None
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        row["error_kind"], row["error_message"] = "malformed_stream", data[:200]
                        return
                    if not isinstance(obj, dict):
                        row["error_kind"], row["error_message"] = "malformed_stream", data[:200]
                        return
                    if obj.get("error"):
                        row["error_kind"] = "server_error"
                        row["error_message"] = json.dumps(obj["error"])[:300]
                        return
                    if row["model"] is None and isinstance(obj.get("model"), str):
                        row["model"], row["routed_by"] = obj["model"], "stream"
                    if any(_has_tokens(c) for c in obj.get("choices") or []):
                        last = time.perf_counter() - t0
                        if chunks == 0:
                            row["first_token_s"] = last
                        chunks += 1
                    if isinstance(obj.get("usage"), dict):
                        usage = obj["usage"]
                row["end_s"] = time.perf_counter() - t0
                ntok = chunks
                if usage and usage.get("completion_tokens") is not None:
                    ntok = int(usage["completion_tokens"])
                    if usage.get("prompt_tokens") is not None:
                        row["prompt_tokens"] = int(usage["prompt_tokens"])
                row["completion_tokens"] = ntok
                if ntok > 1 and chunks > 1:
                    row["tpot_ms"] = 1000 * (last - row["first_token_s"]) / (ntok - 1)
                if not done:
                    row["error_kind"] = "stream_incomplete"
                    row["error_message"] = "the stream ended without 'data: [DONE]'"
                elif chunks == 0:
                    row["error_kind"], row["error_message"] = "no_tokens", "no chunk carried tokens"
                else:
                    row["ok"], row["error_kind"] = True, ""
    except TimeoutError:
        row["error_kind"], row["error_message"] = "request_timeout", \
            f"no complete response within {timeout_s:g} s"
    except httpx.ConnectError as e:
        row["error_kind"], row["error_message"] = "connect_error", str(e)[:300]
    except (httpx.RemoteProtocolError, httpx.ReadError) as e:
        row["error_kind"], row["error_message"] = "stream_broken", f"{type(e).__name__}: {e}"[:300]
    except httpx.HTTPError as e:
        row["error_kind"], row["error_message"] = "http_error", f"{type(e).__name__}: {e}"[:300]
    finally:
        if math.isnan(row["end_s"]):
            row["end_s"] = time.perf_counter() - t0
        row["ttft_ms"] = 1000 * (row["first_token_s"] - row["send_s"])
        if row["ok"]:
            row["e2e_ms"] = 1000 * (row["end_s"] - row["send_s"])


def send_workload(workload: Sequence[LiveRequest], resolve: Resolver, *, api: str = "completions",
                  body_extra: Mapping | None = None, headers: Mapping | None = None,
                  timeout_s: float = 120.0, connect_timeout_s: float = 10.0) -> pd.DataFrame:
    """Send every request at its scheduled time (open loop, streaming) and return one row per
    request (:data:`REQUEST_COLUMNS`; times in s from the start, latencies in ms, measured).

    ``body_extra`` goes into every request body (e.g. ``{"ignore_eos": True, "min_tokens": 32}``
    for random-weight models), ``headers`` with every request (an ``Authorization`` header is
    sent, never recorded). A failure (HTTP status, broken or malformed stream, timeout after
    ``timeout_s``) is a row with ``ok=False`` and its ``error_kind``, never an exception.
    """
    import httpx
    if api not in ("completions", "chat"):
        raise ValidationError(f"api must be 'completions' or 'chat', got {api!r}")
    rows = [_row(r) for r in workload]

    async def run():
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
            t0 = time.perf_counter()
            await asyncio.gather(*(
                _one(client, req, resolve, row, t0, api=api, body_extra=dict(body_extra or {}),
                     headers=dict(headers or {}), timeout_s=timeout_s)
                for req, row in zip(workload, rows)))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run())
    else:   # called from a running loop (a notebook): run in a thread of its own
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run()).result()
    return pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))


# ----------------------------------------------------------------------------- the record

def read_plan_record(path) -> dict:
    """The plan ``routerwise solve --json`` wrote, checked for what a live check needs."""
    from pathlib import Path
    p = Path(path)
    try:
        plan = json.loads(p.read_text())
    except OSError as e:
        raise ValidationError(f"cannot read the plan {p}: {e.strerror or e}") from e
    except ValueError as e:
        raise ValidationError(f"the plan {p} is not JSON ({e}); give the file "
                              f"`routerwise solve --json` wrote") from e
    _check_plan(plan, str(p))
    return plan


def _check_plan(plan: Mapping, where: str = "the plan") -> None:
    if not isinstance(plan, Mapping) or plan.get("status") is None:
        raise ValidationError(f"{where} is not a plan written by `routerwise solve --json`")
    if not plan.get("models"):
        raise ValidationError(f"{where} routes nothing (status {plan.get('status')!r}): solve "
                              f"a feasible plan first")
    for k in ("latency_ms", "arrival_rate_rps", "slo"):
        if plan.get(k) is None:
            raise ValidationError(f"{where} has no {k!r}; write it with `routerwise solve --json`")


def _stat(values: pd.Series, agg: str) -> float:
    v = values.dropna().to_numpy(dtype=float)
    if v.size == 0:
        return float("nan")
    return float(np.mean(v)) if agg == "mean" else float(np.percentile(v, 99))


def _fell_behind(df: pd.DataFrame, col: str) -> bool:
    """Whether a model's queue grew during the run: the last third's mean latency over twice
    the first third's (a stable server keeps them alike; a saturated one grows without bound)."""
    v = df.sort_values("scheduled_s")[col].dropna().to_numpy(dtype=float)
    if v.size < 9:
        return False
    k = v.size // 3
    return bool(np.mean(v[-k:]) > 2.0 * np.mean(v[:k]))


def measured_record(plan: Mapping, requests: pd.DataFrame, *, duration_s: float,
                    rate_rps: float | None = None, seed: int = 0,
                    replay: Mapping | None = None) -> dict:
    """One record of :func:`routerwise.planning.consistency.replay_record`'s keys, labelled
    measured: ``replayed_*`` hold the live values (the SLO's metric, mean and p99, per model
    and for the system, over the requests that finished), ``predicted_*`` the plan's.

    Added: ``source`` ("measured"), ``offered_rate_rps`` / ``achieved_rate_rps`` (requests
    sent / finished per second of the run), ``client_send_lag_ms_p50`` / ``_p99`` (how late
    the client sent requests after their schedule), ``requests_sent``, ``requests_ok``,
    ``requests_failed``, ``errors`` (count per error kind), ``routed_fraction_max_abs_err``
    (planned vs live fractions over the requests whose model is known), per model
    ``live_fraction``, ``live_load_rps``, ``requests``, ``failed``, ``kit_replayed_ms``, and
    ``kit_replay`` (the replay record's system values) when ``replay`` (a replay record) is
    given; ``saturated`` per model means its latency grew through the run (last third's mean
    over twice the first third's). ``slo_met``: the live value within the SLO, no model
    saturated and no request failed.
    """
    _check_plan(plan)
    slo = plan["slo"]
    metric, agg, tau = slo["metric"], slo.get("aggregate", "mean"), float(slo["latency_ms"])
    kind = metric.split("_")[0]
    col = {"ttft": "ttft_ms", "tpot": "tpot_ms", "e2e": "e2e_ms"}.get(kind)
    if col is None:
        raise ValidationError(f"a live check measures ttft, tpot and e2e; the plan's metric "
                              f"is {metric!r}")
    stat = metric.split("_", 1)[1]
    if stat not in ("mean", "p99"):
        raise ValidationError(f"a live check reports means and p99s; the plan's metric is "
                              f"{metric!r}")
    rate = float(plan["arrival_rate_rps"] if rate_rps is None else rate_rps)
    df = requests
    ok = df[df["ok"]]
    sent = int((df["error_kind"] != "not_sent").sum())
    known = df[df["model"].notna()]
    rep_rows = {r["model"]: r for r in (replay or {}).get("per_model", [])}
    rows = []
    for m in plan["models"]:
        name = m["name"]
        mine = known[known["model"] == name]
        mine_ok = mine[mine["ok"]]
        w = float(m["fraction"])
        if w <= 0 and mine.empty:
            continue
        live_w = len(mine) / len(known) if len(known) else float("nan")
        rows.append({"model": name, "setup": _setup_label(m), "fraction": w,
                     "load_rps": rate * w, "predicted_ms": m.get("latency_ms"),
                     "replayed_ms": _stat(mine_ok[col], stat),
                     "predicted_p99_ms": rep_rows.get(name, {}).get("predicted_p99_ms"),
                     "replayed_p99_ms": _stat(mine_ok[col], "p99"),
                     "saturated": _fell_behind(mine_ok, col),
                     "mean_prompt_tokens": float(mine_ok["prompt_tokens"].mean())
                     if len(mine_ok) else float("nan"),
                     "mean_output_tokens": float(mine_ok["completion_tokens"].mean())
                     if len(mine_ok) else float("nan"),
                     "live_fraction": live_w, "live_load_rps": len(mine) / duration_s,
                     "requests": int(len(mine)), "failed": int((~mine["ok"]).sum()),
                     "kit_replayed_ms": rep_rows.get(name, {}).get("replayed_ms")})
    if agg == "mean":
        value = _stat(ok[col], stat)
    else:
        value = max((r["replayed_ms"] for r in rows if r["fraction"] > 0), default=float("nan"))
    pred = float(plan["latency_ms"])
    failed = int((~df["ok"]).sum())
    saturated = any(r["saturated"] for r in rows)
    errors = {str(k): int(v) for k, v in df.loc[~df["ok"], "error_kind"].value_counts().items()}
    frac_err = max((abs(r["live_fraction"] - r["fraction"]) for r in rows), default=float("nan"))
    p99s = [r["predicted_p99_ms"] for r in rows]
    rec = {"slo_ms": tau, "metric": metric, "aggregate": agg, "predicted_ms": pred,
           "replayed_ms": value, "replayed_mean_ms": _stat(ok[col], "mean"),
           "replayed_p99_ms": _stat(ok[col], "p99"),
           "predicted_p99_ms": float(max(p99s)) if p99s and None not in p99s else None,
           "p99_metric": f"{kind}_p99",
           "rel_gap_pct": 100.0 * (pred - value) / value if value > 0 else float("nan"),
           "slo_met": bool(value <= tau and not saturated and failed == 0),
           "replays": 1, "replay_seeds": [int(seed)], "replayed_ms_per_replay": [value],
           "replayed_sd_ms": None, "confidence": None, "replayed_upper_ms": None,
           "simulated_requests_per_model": None, "seed": int(seed), "per_model": rows,
           "kind": MEASURED_KIND, "source": "measured",
           "duration_s": float(duration_s), "offered_rate_rps": rate,
           "achieved_rate_rps": len(ok) / duration_s, "requests_sent": sent,
           "requests_ok": int(len(ok)), "requests_failed": failed, "errors": errors,
           "routed_fraction_max_abs_err": frac_err,
           "client_send_lag_ms_p50": _lag(df, 50), "client_send_lag_ms_p99": _lag(df, 99),
           "routed_by": sorted(str(x) for x in known["routed_by"].unique())}
    if replay is not None:
        rec["kit_replay"] = {k: replay.get(k) for k in ("replayed_ms", "replayed_mean_ms",
                                                        "replayed_p99_ms", "slo_met", "kind")}
    return rec


def _lag(df: pd.DataFrame, q: float) -> float:
    """A quantile of how late the client sent requests after their scheduled time (ms): a
    client that falls behind offers less load than planned and delays what it measures."""
    lag = 1000 * (df["send_s"] - df["scheduled_s"]).dropna().to_numpy(dtype=float)
    return float(np.percentile(lag, q)) if lag.size else float("nan")


def _setup_label(m: Mapping) -> str:
    if m.get("tp") is None:
        return ""
    return f"tp{m['tp']}/rho{float(m.get('compute_share', 1.0)):g}"


def overhead_summary(direct_ttft_ms: Sequence[float], routed_ttft_ms: Sequence[float]
                     ) -> dict[str, float]:
    """p50, p99 and mean of each side's TTFT (ms) and the router's overhead at each: routed
    minus direct. NaN entries (failed requests) are left out; both sides need some."""
    d = np.asarray(direct_ttft_ms, dtype=float)
    r = np.asarray(routed_ttft_ms, dtype=float)
    d, r = d[np.isfinite(d)], r[np.isfinite(r)]
    if d.size == 0 or r.size == 0:
        raise ValidationError("overhead_summary needs at least one measured TTFT on each side")
    out = {}
    for name, a in (("direct", d), ("routed", r)):
        out[f"{name}_ttft_p50_ms"] = float(np.percentile(a, 50))
        out[f"{name}_ttft_p99_ms"] = float(np.percentile(a, 99))
        out[f"{name}_ttft_mean_ms"] = float(a.mean())
    for q in ("p50", "p99", "mean"):
        out[f"router_overhead_ms_{q}"] = out[f"routed_ttft_{q}_ms"] - out[f"direct_ttft_{q}_ms"]
    return out


def block_means(requests: pd.DataFrame, block_s: float) -> np.ndarray:
    """Mean TTFT (ms) of the finished requests in each ``block_s``-second block of their
    scheduled times, in time order (blocks without a finished request left out)."""
    if not block_s > 0:
        raise ValidationError(f"block_s must be > 0 seconds, got {block_s!r}")
    ok = requests.loc[requests["ok"].astype(bool)]
    block = np.floor(ok["scheduled_s"].to_numpy(dtype=float) / block_s)
    return ok.groupby(block)["ttft_ms"].mean().sort_index().to_numpy(dtype=float)


def gap_resolution(through_router: pd.DataFrame, direct: pd.DataFrame, *,
                   block_s: float) -> dict:
    """How precisely a live check of this length measures the gap to a prediction (measured).

    The workload's blocks of ``block_s`` seconds are independent repeats of the same load:
    the 95% confidence half-width of the live mean TTFT is Student's t over the router run's
    block means, and ``rel_gap_ci95_pct`` is it as a share of the live mean (the gap's
    uncertainty, in the units of ``rel_gap_pct``). ``direct_block_spread_pct``: the direct
    run's block means, ``100 (max - min) / mean``: how far the same load moves on this
    machine within the check. A target tighter than ``rel_gap_ci95_pct`` cannot be told
    met or missed by this check: run it longer or on a quieter machine."""
    live, direct_b = block_means(through_router, block_s), block_means(direct, block_s)
    n = live.size
    mean = float(np.mean(live)) if n else float("nan")
    half = half_width_95(live)
    spread = (float(100.0 * (direct_b.max() - direct_b.min()) / direct_b.mean())
              if direct_b.size >= 2 else float("nan"))
    return {"blocks": n, "block_s": float(block_s),
            "live_block_ttft_mean_ms": [float(x) for x in live],
            "direct_block_ttft_mean_ms": [float(x) for x in direct_b],
            "live_ttft_mean_ci95_ms": half,
            "rel_gap_ci95_pct": 100.0 * half / mean if mean > 0 else float("nan"),
            "direct_block_spread_pct": spread, "kind": "measured"}


def router_overhead(through_router: pd.DataFrame, direct: pd.DataFrame) -> dict:
    """The router's added TTFT (ms, measured): p50 and p99 of TTFT through the router minus
    the same quantiles of direct calls at the same schedule (same load and prompts), over the
    requests that finished in each run (:func:`overhead_summary` of the two tables)."""
    s = overhead_summary(direct.loc[direct["ok"], "ttft_ms"].to_numpy(dtype=float),
                         through_router.loc[through_router["ok"], "ttft_ms"].to_numpy(dtype=float))
    return {"router_overhead_ms_p50": s["router_overhead_ms_p50"],
            "router_overhead_ms_p99": s["router_overhead_ms_p99"],
            "router_ttft_ms_p50": s["routed_ttft_p50_ms"], "direct_ttft_ms_p50": s["direct_ttft_p50_ms"],
            "router_ttft_ms_p99": s["routed_ttft_p99_ms"], "direct_ttft_ms_p99": s["direct_ttft_p99_ms"],
            "kind": "measured"}
