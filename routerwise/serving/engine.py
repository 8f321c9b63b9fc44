"""Engine profiles and the paged-KV serving simulation of one vLLM replica.

An :class:`EngineProfile` names what a vLLM generation does differently; an
:class:`EngineSetup` adds the scheduler knobs of one deployment. :func:`simulate_engine`
replays a request stream through one replica under them and returns the same
:class:`~routerwise.serving.simulator.SimResult` as the legacy :func:`~routerwise.serving.simulator.simulate`.

Profiles (:data:`PROFILES`, :func:`get_profile`; an unknown name is a typed error)
--------------------------------------------------------------------------------
* ``legacy``: the kit's original replica (:func:`routerwise.serving.simulator.simulate`): KV for
  prompt + output reserved at admission (never preempts), prefill priority, no chunking, no
  overheads beyond the fitted step costs, KV capacity a constant. Kept so earlier results
  reproduce. Its prefill budget is the step table's: :func:`setup_for` refuses
  ``max_num_batched_tokens`` and host overheads for it (it would ignore them), naming the
  vLLM profiles that honour them.
* ``vllm-v0``: vLLM's V0 engine (<= 0.7): prefill priority (whole prompts, up to the batched
  token budget, default ``max(max_model_len, 2048)``; the kit uses the step table's budget),
  ``max_num_seqs`` 256, CUDA graphs for decode only. The fitted ``vllm`` step costs come from
  V0-era static-batch runs, so this profile adds no host overhead of its own; its request
  overhead is **not calibrated** (no V0-era online run in the data): it borrows the V1 value.
* ``vllm-v1``: vLLM's V1 engine (0.8 onwards, default since 0.8): one unified scheduler with
  chunked prefill always on: running requests are scheduled first (one token each), then
  partial prefills and waiting requests take what is left of ``max_num_batched_tokens``
  (default 8192 on GPUs with >= 70 GiB, else 2048: vLLM's API-server defaults), CUDA graphs
  for decode and mixed batches. Host overheads **fitted** on measured online runs
  (:mod:`routerwise.serving.latency_validation`).

Both vLLM profiles share the paged KV cache: blocks of :data:`BLOCK_TOKENS` tokens allocated
on demand (a request holds ``prompt + generated`` tokens, rounded up to a block: counted as
``tokens + (BLOCK_TOKENS - 1)`` per sequence, the worst case of the rounding); admission needs
room for the scheduled tokens only. When a decode step would overflow the cache, the most
recently admitted running request is **preempted by recompute** (vLLM's default): its blocks
are freed and it returns to the head of the waiting queue with ``prompt + generated`` tokens to
prefill again. KV capacity, unless given, comes from the memory model
(:func:`routerwise.serving.memory.kv_capacity_tokens` at ``gpu_memory_utilization``, default 0.9):
GPU memory x utilisation - weights/tp - runtime reserve, per shard.

Host overheads. The fitted ``vllm`` step costs (:mod:`routerwise.serving.stepcost`) carry V0-era host
terms fitted on static batches (``t_step_ms`` per pass, ``t_seq_us`` per sequence,
``t_prompt_us`` per prompt, ``t_layer_us`` per layer for launches). A profile with
``own_host_overheads`` (``vllm-v1``: CUDA graphs, a rewritten scheduler and input preparation)
drops those four terms from the step costs (:func:`profile_step_params`) and uses its own
fitted overheads instead. Costs added to the step times (``StepTimes``), **fitted** per
profile:

* ``request_overhead_ms``: HTTP, tokenization, detokenization/streaming, added to TTFT and
  E2E of runs timed at the client (not to TPOT; engine-side spans start after it);
* ``iteration_overhead_ms`` per engine iteration (scheduling, input preparation, sampling),
  plus ``layer_overhead_us`` per model layer per iteration (launches and small kernels around
  the captured graphs: the host cost that grows with depth);
* ``seq_overhead_us`` per sequence in an iteration.

A mixed iteration with ``B`` decoding sequences (``C`` cached tokens) and prefill chunks of
``n`` tokens (``m`` chunks, causal-attention term ``S = sum((done + c)^2 - done^2)``) costs
``decode_base[B] + prefill_tok[n + B] - prefill_tok[B] + c_sq S + c_seq m + c_ctx C +
iteration_overhead + seq_overhead (B + m)``: it reduces to the legacy decode step when
``n = 0`` and to the legacy prefill when ``B = 0``. While only decodes run and nothing can be
admitted, steps are skipped ahead in closed form (as in the legacy simulator) up to the next
completion, the next admissible arrival, or the step at which the cache would overflow.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ValidationError
from . import architectures
from .hardware import gpu_spec
from .memory import DEFAULT as DEFAULT_MEMORY
from .memory import MemoryAssumptions, kv_capacity_tokens
from .simulator import EngineConfig, Requests, SimResult, _summarize, decode_steps_until, simulate
from .stepcost import StepTimes

__all__ = ["BLOCK_TOKENS", "EngineProfile", "EngineSetup", "PROFILES", "DEFAULT_PROFILE",
           "UnknownEngineProfile", "get_profile", "setup_for", "simulate_engine",
           "profile_step_params"]

BLOCK_TOKENS = 16
HIGH_MEMORY_GIB = 70.0  # vLLM V1 raises its default token budget on GPUs with this much memory


class UnknownEngineProfile(ValidationError):
    """An engine profile name that is not in :data:`PROFILES`."""


@dataclass(frozen=True)
class EngineProfile:
    """What one engine generation does (see the module docstring); numbers labelled."""

    name: str
    paged_kv: bool
    chunked_prefill: bool
    cuda_graphs: str
    default_max_num_seqs: int
    default_max_num_batched_tokens: int | None  # None: the profile's rule (see budget())
    request_overhead_ms: float = 0.0
    iteration_overhead_ms: float = 0.0
    seq_overhead_us: float = 0.0
    layer_overhead_us: float = 0.0
    overhead_source: str = "none"
    description: str = ""
    own_host_overheads: bool = False  # replace the step fit's host terms with this profile's

    def budget(self, gpu_memory_gib: float, step_budget: int) -> int:
        """Default ``max_num_batched_tokens`` on a GPU with ``gpu_memory_gib``."""
        if self.default_max_num_batched_tokens is not None:
            return min(self.default_max_num_batched_tokens, step_budget)
        if self.chunked_prefill:
            return min(8192 if gpu_memory_gib >= HIGH_MEMORY_GIB else 2048, step_budget)
        return step_budget

    def label(self) -> str:
        return (f"engine profile {self.name} (paged KV {self.paged_kv}, chunked prefill "
                f"{self.chunked_prefill}, CUDA graphs {self.cuda_graphs}; request overhead "
                f"{self.request_overhead_ms:.3g} ms, iteration overhead "
                f"{self.iteration_overhead_ms:.3g} ms + {self.layer_overhead_us:.3g} us/layer, "
                f"{self.seq_overhead_us:.3g} us/seq: {self.overhead_source})")


# Fitted by routerwise.serving.latency_validation.calibrate on all five replayable runs (llm-d exp-0,
# four inference-sim sweeps); benchmarks/bench_latency_validation.py prints this fit ("fit on
# all runs") and scores held-out runs with fits that leave the scored run out.
# Fitted by latency_validation.calibrate on every eligible run (bench_latency_validation.py
# prints the fit; tests/test_latency_validation.py checks these against a fresh one).
V1_FIT = dict(request_overhead_ms=0.1649, iteration_overhead_ms=1.157, seq_overhead_us=29.99,
              layer_overhead_us=10.84)
V1_FIT_SOURCE = ("fitted on measured online vLLM 0.8/0.11 runs (llm-d-benchmark exp-0, "
                 "inference-sim x4) by routerwise.serving.latency_validation")

PROFILES: dict[str, EngineProfile] = {
    "legacy": EngineProfile(
        "legacy", paged_kv=False, chunked_prefill=False, cuda_graphs="as in the step fit",
        default_max_num_seqs=256, default_max_num_batched_tokens=None,
        overhead_source="none (the kit's original replica)",
        description="KV reserved for prompt + output at admission, never preempts"),
    "vllm-v0": EngineProfile(
        "vllm-v0", paged_kv=True, chunked_prefill=False, cuda_graphs="decode only",
        default_max_num_seqs=256, default_max_num_batched_tokens=None,
        request_overhead_ms=V1_FIT["request_overhead_ms"],
        overhead_source="host overheads inside the fitted V0-era step costs; request overhead "
                        "borrowed from vllm-v1 (no V0-era online run to calibrate on)",
        description="prefill priority, whole prompts, paged KV with recompute preemption"),
    "vllm-v1": EngineProfile(
        "vllm-v1", paged_kv=True, chunked_prefill=True, cuda_graphs="decode and mixed",
        default_max_num_seqs=256, default_max_num_batched_tokens=None,
        overhead_source=V1_FIT_SOURCE, **V1_FIT, own_host_overheads=True,
        description="unified token-budget scheduler, chunked prefill, paged KV, recompute "
                    "preemption; its own host overheads replace the V0-era ones of the step "
                    "fit"),
}
DEFAULT_PROFILE = "vllm-v1"


def get_profile(name: str | EngineProfile) -> EngineProfile:
    if isinstance(name, EngineProfile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownEngineProfile(f"unknown engine profile {name!r}; known profiles: "
                                   f"{sorted(PROFILES)}") from None


@dataclass(frozen=True)
class EngineSetup:
    """One replica's engine: profile, scheduler knobs and KV capacity (tokens)."""

    profile: EngineProfile
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_capacity_tokens: int
    gpu_memory_utilization: float = 0.9
    kv_source: str = ""
    num_layers: int = 0  # of the model: the per-layer iteration overhead scales with it

    @property
    def iteration_ms(self) -> float:
        """Host overhead of one iteration: constant + per layer (ms)."""
        return (self.profile.iteration_overhead_ms
                + self.profile.layer_overhead_us * 1e-3 * self.num_layers)

    def __post_init__(self):
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise ValidationError("max_num_seqs and max_num_batched_tokens must be >= 1")
        if self.kv_capacity_tokens < 2 * BLOCK_TOKENS:
            raise ValidationError(f"KV capacity {self.kv_capacity_tokens} tokens holds less "
                                  f"than two blocks: the model does not fit at this memory "
                                  f"share; lower tp's load or raise gpu_memory_utilization")

    def label(self) -> str:
        return (f"{self.profile.label()}; max_num_seqs {self.max_num_seqs}, "
                f"max_num_batched_tokens {self.max_num_batched_tokens}, KV capacity "
                f"{self.kv_capacity_tokens} tokens ({self.kv_source})")


_OVERHEAD_FIELDS = ("request_overhead_ms", "iteration_overhead_ms", "seq_overhead_us",
                    "layer_overhead_us")


def _check_legacy(prof: EngineProfile, max_num_batched_tokens: int | None = None) -> None:
    """The legacy replica ignores a batched-token budget and host overheads: refuse them."""
    if prof.paged_kv:
        return
    given = ([f"max_num_batched_tokens={max_num_batched_tokens}"]
             if max_num_batched_tokens is not None else [])
    given += [f"{f}={getattr(prof, f):g}" for f in _OVERHEAD_FIELDS if getattr(prof, f)]
    if given:
        raise ValidationError(
            f"engine profile {prof.name!r} (the kit's original replica) ignores "
            f"{', '.join(given)}: it prefills up to the step table's batched-token budget and "
            f"adds no overheads beyond the fitted step costs. Use engine profile 'vllm-v0' "
            f"(prefill priority, no chunking) or 'vllm-v1', which honour them, or leave them out")


def setup_for(profile: str | EngineProfile, step: StepTimes, *, arch=None, gpu: str | None = None,
              tp: int = 1, max_num_seqs: int | None = None,
              max_num_batched_tokens: int | None = None, gpu_memory_utilization: float = 0.9,
              kv_capacity_tokens: int | None = None, mem_share: float = 1.0,
              memory: MemoryAssumptions = DEFAULT_MEMORY, **overrides) -> EngineSetup:
    """An :class:`EngineSetup` with vLLM's defaults for whatever is not given.

    KV capacity: ``kv_capacity_tokens`` if given, else the memory model on ``arch``/``gpu``/
    ``tp`` at ``gpu_memory_utilization * mem_share`` of each GPU. ``overrides`` replace profile
    fields (e.g. fitted overheads). The ``legacy`` profile takes neither
    ``max_num_batched_tokens`` nor overheads (a ValidationError: it would ignore them).
    """
    prof = get_profile(profile)
    if overrides:
        prof = replace(prof, **overrides)
    _check_legacy(prof, max_num_batched_tokens)
    if not 0 < gpu_memory_utilization <= 1:
        raise ValidationError(f"gpu_memory_utilization must be in (0, 1], got "
                              f"{gpu_memory_utilization}")
    spec = gpu_spec(gpu) if gpu is not None else None
    if isinstance(arch, str):
        arch = architectures.get(arch)
    if prof.layer_overhead_us and arch is None:
        raise ValidationError(f"profile {prof.name} has a per-layer overhead: give arch")
    if kv_capacity_tokens is None:
        if arch is None or spec is None:
            raise ValidationError("give kv_capacity_tokens, or arch and gpu so the memory model "
                                  "can derive it")
        kv = kv_capacity_tokens_for(arch, tp, spec.name, gpu_memory_utilization * mem_share,
                                    memory)
        src = (f"memory model (modelled): {gpu_memory_utilization:g} x {mem_share:g} of "
               f"{spec.name} - weights/tp - {memory.per_gpu_overhead_gb:g} GB reserve")
    else:
        kv, src = int(kv_capacity_tokens), "given"
    seqs = max_num_seqs if max_num_seqs is not None else prof.default_max_num_seqs
    seqs = min(seqs, step.max_seqs)
    if max_num_batched_tokens is None:
        budget = prof.budget(spec.memory_gib if spec else 80.0, step.max_batched_tokens)
    else:
        budget = int(max_num_batched_tokens)
        if budget > step.max_batched_tokens:
            raise ValidationError(f"max_num_batched_tokens {budget} exceeds the step table's "
                                  f"{step.max_batched_tokens}: tabulate the step times wider")
    return EngineSetup(prof, int(seqs), int(budget), int(kv), gpu_memory_utilization, src,
                       arch.num_layers if arch is not None else 0)


def kv_capacity_tokens_for(arch, tp, gpu, share, memory) -> int:
    return kv_capacity_tokens(arch, tp, gpu, min(share, 1.0), memory)


_HOST_KEYS = ("t_step_ms", "t_seq_us", "t_prompt_us", "t_layer_us")


def profile_step_params(params, profile: str | EngineProfile):
    """The step-cost parameters a profile runs on: with its own host overheads, the fitted
    engine's host terms (:data:`_HOST_KEYS`) are set to zero (kernel times, collectives and
    efficiencies are kept)."""
    from .stepcost import StepCostParams

    prof = get_profile(profile)
    if not prof.own_host_overheads:
        return params
    eng_ = {e: {f: dict(v) for f, v in fams.items()} for e, fams in params.engine.items()}
    for fams in eng_.values():
        for v in fams.values():
            for k in _HOST_KEYS:
                if k in v:
                    v[k] = 0.0
    return StepCostParams(params.family, eng_, params.allreduce, params.q, params.inputs,
                          params.excluded_models,
                          source=f"{params.source}; host terms replaced by {prof.name}")


def simulate_engine(step: StepTimes, requests: Requests, setup: EngineSetup, *,
                    warmup_fraction: float = 0.1, load_rps: float | None = None,
                    add_request_overhead: bool = True,
                    max_skip_steps: int | None = None) -> SimResult:
    """Run one replica of ``setup`` over ``requests`` until every request has finished.

    ``add_request_overhead`` adds the profile's per-request overhead to TTFT and E2E (use
    False for runs timed inside the engine). ``max_skip_steps`` caps the closed-form skip-ahead
    (1 = one decode step at a time: the reference the skip-ahead must reproduce).
    """
    prof = setup.profile
    if not prof.paged_kv:
        _check_legacy(prof)
        cfg = EngineConfig(setup.max_num_seqs, setup.kv_capacity_tokens)
        return simulate(step, requests, cfg, warmup_fraction=warmup_fraction, load_rps=load_rps)
    if not 0 <= warmup_fraction < 1:
        raise ValidationError("warmup_fraction must be in [0, 1)")
    n = len(requests)
    P = requests.prompt_tokens
    O = requests.output_tokens
    budget = setup.max_num_batched_tokens
    cap = setup.kv_capacity_tokens
    if budget > step.max_batched_tokens:
        raise ValidationError(f"max_num_batched_tokens {budget} exceeds the step table's "
                              f"{step.max_batched_tokens}: tabulate the step times wider")
    if not prof.chunked_prefill and int((P + O).max()) - 1 > budget:
        # without chunking a prompt (or a preempted request's recompute of prompt + generated
        # tokens) is prefilled in one pass: vLLM V0 requires a budget >= max_model_len
        raise ValidationError(f"a request of {int((P + O).max())} tokens (prompt + output) "
                              f"exceeds the batched-token budget {budget}: raise "
                              f"max_num_batched_tokens or use a chunked-prefill profile")
    if int((P + O).max()) + BLOCK_TOKENS > cap:
        raise ValidationError(f"a request needs {int((P + O).max())} KV tokens, more than the "
                              f"replica's capacity {cap}: it could never finish")

    arr_ms = (requests.arrival_s * 1e3).tolist()
    plist, olist = P.tolist(), O.tolist()
    pre_tab = step.prefill_by_tokens_ms.tolist()
    c_sq, c_seq = step.prefill_ms_per_sq_token, step.prefill_ms_per_seq
    dec_tab = step.decode_base_ms.tolist()
    b_ctx = step.decode_ms_per_context_token
    t_it = setup.iteration_ms
    t_sq = prof.seq_overhead_us * 1e-3
    max_seqs = setup.max_num_seqs
    chunked = prof.chunked_prefill
    frag = BLOCK_TOKENS - 1

    first = [math.nan] * n
    finish = [0.0] * n
    admit = [math.inf] * n
    gen = [0] * n  # tokens generated (first token included)
    target = plist[:]  # tokens the current prefill must cover (prompt + generated on recompute)
    done_pf = [0] * n  # tokens of the current prefill already computed
    waiting: deque[int] = deque()
    prefilling: list[int] = []  # admitted, prefill not complete (admission order)
    running: dict[int, None] = {}  # decoding requests in admission order (dict keeps order)
    version = [0] * n  # invalidates heap entries of preempted requests
    heap: list[tuple[int, int, int]] = []  # (decode step at which i finishes, i, version)
    s_start = [0] * n  # decode step counter S when i (re)entered decoding
    g_start = [0] * n  # gen[i] at that moment
    t = 0.0
    S = 0
    B = 0
    K = 0  # sum over decoding of (target + gen_start - S_start - ... ): held = K + B * S
    held_pf = 0  # tokens held by partial prefills
    peak_kv = 0
    nxt = 0
    done = 0
    preemptions = 0
    iterations = 0

    def start_decoding(i):
        nonlocal B, K
        running[i] = None
        s_start[i] = S
        g_start[i] = gen[i]
        K += plist[i] + gen[i] - S
        B += 1
        heapq.heappush(heap, (S + olist[i] - gen[i], i, version[i]))

    def stop_decoding(i):
        nonlocal B, K
        del running[i]
        K -= plist[i] + g_start[i] - s_start[i]
        B -= 1

    def finish_due(steps_done: int, now_ms: float) -> int:
        """Finish every running request whose last token is at or before ``steps_done``."""
        count = 0
        while heap and heap[0][0] <= steps_done:
            _, i, v = heapq.heappop(heap)
            if v != version[i] or i not in running:
                continue
            finish[i] = now_ms
            gen[i] = olist[i]
            stop_decoding(i)
            count += 1
        return count

    def preempt_last():
        """Recompute preemption of the most recently admitted running request."""
        nonlocal held_pf, preemptions
        preemptions += 1
        if prefilling:
            i = prefilling.pop()
            held_pf -= done_pf[i]
            done_pf[i] = 0
            waiting.appendleft(i)
            return
        i = next(reversed(running))
        gen[i] = g_start[i] + S - s_start[i]
        stop_decoding(i)
        version[i] += 1
        target[i] = plist[i] + gen[i]
        done_pf[i] = 0
        waiting.appendleft(i)

    while done < n:
        while nxt < n and arr_ms[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        held = K + B * S + held_pf
        seated = B + len(prefilling)
        # ---- prefill work that could be scheduled now ---------------------------------------
        can_prefill = bool(prefilling)
        if not can_prefill and waiting and seated < max_seqs:
            i = waiting[0]
            first_chunk = min(target[i], budget - (B if chunked else 0)) if chunked else target[i]
            if first_chunk >= 1 and held + first_chunk + frag * (seated + 1) + (
                    B if chunked else 0) <= cap and (chunked or first_chunk <= budget):
                can_prefill = True
        if can_prefill:
            # ---- one iteration with prefill work (mixed when chunked) ------------------------
            n_dec = B if chunked else 0
            # decode tokens need room first; preempt until they fit
            while chunked and B and held + B + frag * seated > cap:
                preempt_last()
                held = K + B * S + held_pf
                seated = B + len(prefilling)
            n_dec = B if chunked else 0
            left = budget - n_dec
            tokens = sq = m = 0
            sched: list[tuple[int, int]] = []
            for i in prefilling:
                if left <= 0:
                    break
                c = min(target[i] - done_pf[i], left)
                if held + c + frag * seated + n_dec > cap:
                    break
                sched.append((i, c))
                held += c
                left -= c
                tokens += c
                d = done_pf[i]
                sq += (d + c) * (d + c) - d * d
                m += 1
            if len(sched) == len(prefilling):
                while waiting and left > 0 and B + len(prefilling) < max_seqs:
                    i = waiting[0]
                    rem = target[i] - done_pf[i]
                    c = min(rem, left) if chunked else rem
                    if c > left or held + c + frag * (seated + 1) + n_dec > cap:
                        break
                    waiting.popleft()
                    if admit[i] == math.inf:
                        admit[i] = t
                    prefilling.append(i)
                    seated += 1
                    sched.append((i, c))
                    held += c
                    left -= c
                    tokens += c
                    d = done_pf[i]
                    sq += (d + c) * (d + c) - d * d
                    m += 1
            if not sched and not n_dec:
                # nothing fits: the cache is full of partial prefills; free the newest one
                preempt_last()
                continue
            C = K + B * S if n_dec else 0
            dt = (dec_tab[n_dec] + pre_tab[tokens + n_dec] - pre_tab[n_dec] + c_sq * sq
                  + c_seq * m + b_ctx * C + t_it + t_sq * (n_dec + m))
            t += dt
            iterations += 1
            # decoders advance one token
            if n_dec:
                S += 1
            for i, c in sched:
                done_pf[i] += c
                held_pf += c
            if held + n_dec > peak_kv:
                peak_kv = held + n_dec
            # completed prefills emit a token and start decoding (or finish)
            still = []
            for i in prefilling:
                if done_pf[i] < target[i]:
                    still.append(i)
                    continue
                held_pf -= done_pf[i]
                done_pf[i] = 0
                gen[i] += 1
                if gen[i] == 1:
                    first[i] = t
                if gen[i] >= olist[i]:
                    finish[i] = t
                    done += 1
                else:
                    start_decoding(i)
            prefilling[:] = still
            if heap and heap[0][0] <= S:    # (finish_due finds nothing otherwise)
                done += finish_due(S, t)
            continue
        if B:
            # ---- decode-only steps, skipped ahead -------------------------------------------
            while heap and (heap[0][2] != version[heap[0][1]] or heap[0][1] not in running):
                heapq.heappop(heap)
            held = K + B * S + held_pf
            room = cap - held - frag * (B + len(prefilling))
            k_kv = room // B
            if k_kv < 1:
                preempt_last()
                continue
            C = K + B * S
            a = dec_tab[B] + t_it + t_sq * B
            k = min(heap[0][0] - S, k_kv)
            if max_skip_steps is not None:
                k = min(k, max_skip_steps)
            if nxt < n and (not waiting) and B < max_seqs:
                k_arr = decode_steps_until(arr_ms[nxt] - t, a, b_ctx, B, C)
                if k_arr < k:
                    k = k_arr
            t += k * a + b_ctx * (k * C + B * k * (k - 1) * 0.5)
            S += k
            iterations += k
            held = K + B * S + held_pf
            if held > peak_kv:
                peak_kv = held
            if heap[0][0] <= S:    # the heap's top is live here (cleaned above)
                done += finish_due(S, t)
            continue
        if waiting and not prefilling:
            raise ValidationError(f"request {waiting[0]} can never be admitted (KV capacity "
                                  f"{cap} tokens, budget {budget})")
        t = max(t, arr_ms[nxt])

    first_a = np.array(first)
    finish_a = np.array(finish)
    if add_request_overhead and prof.request_overhead_ms:
        first_a = first_a + prof.request_overhead_ms
        finish_a = finish_a + prof.request_overhead_ms
    res = _summarize(requests, first_a, finish_a, np.array(admit), peak_kv, warmup_fraction,
                     load_rps)
    return replace(res, preemptions=preemptions, iterations=iterations)
