"""A problem from a TOML file: your models, scores, latency curves, cluster, load and SLO.

``routerwise solve problem.toml [--json plan.json]`` and :func:`load_problem` read the same
file. Paths are relative to the file. Every table and key is checked; a misspelt key is an
error that lists the allowed ones, and values keep their TOML type (``true``/``false`` unquoted,
integers without a decimal point, numbers finite). Example (``data/examples/problem.toml`` is a working one)::

    name = "my-ladder"

    [cluster]
    gpu = "A100-80GB"          # a type in routerwise.serving.hardware.GPUS, or give mem_gb
    num_gpus = 4
    # a GPU the catalogue lacks, described so that simulate = true works (e.g. an L40S):
    # gpu = "L40S", mem_gb = 48.0, hbm_gbs = 864.0, bf16_tflops = 362.0
    #   (+ optional interconnect_gbs = 64.0, family = "ampere": whose fitted efficiencies
    #    to borrow, "ampere" or "hopper")
    # or a cluster of several GPU types (counts per type, GPUs numbered in this order):
    # gpus = {"A100-80GB" = 4, "H100-80GB" = 2}    (+ mem_gb = {"my-gpu" = 48.0} for custom types,
    #  and hbm_gbs / bf16_tflops / ... as tables of type = value to simulate them)

    [[models]]
    name = "small"             # as in the score table and the curve table
    architecture = "llama-3.1-8b-instruct"   # a registered name, or config = "small/config.json"
    # (+ gated_mlp = true/false with a config whose model_type the reader does not know)
    # without an architecture: params_b = 8.0 and shard_mem_gb = {1 = 17.5, 2 = 9.2}

    [scores]
    table = "scores.csv"       # prompt_id, model, score[, prompt_tokens, output_tokens, ...]
    kind = "measured"          # or "predicted": what the router routes on, recorded as such
    true_table = ""            # optional: realized scores, same layout, for reporting

    [latency]
    table = "curves.csv"       # the kit's latency-table schema (measured or simulated rows)
    metric = "ttft_mean"
    # or simulate = true: curves simulated for each model's architecture on cluster.gpu
    # (on a mixed cluster: the table's gpu column names each curve's type, or each type is
    #  simulated)
    # calibration = "deployment.json"   with simulate = true: simulate with the overheads
    #   `routerwise calibrate --out` fitted to your measured sweep; the planning margin is then
    #   the held-out error that calibration measured (from Python: a DeploymentCalibration)

    [workload]
    arrival_rate_rps = 20.0

    [slo]
    latency_ms = 600.0
    aggregate = "mean"         # or "max": the worst routed model must meet it

    [space]                    # optional: which setups to consider
    tp_degrees = [1, 2, 4]
    compute_tenths = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

    [prices]                   # optional: $/hour per GPU type, for `routerwise cost`
    usd_per_hour = { "A100-80GB" = 2.0 }   # your prices; every cluster GPU type needs one
    source = "illustrative assumption"     # where they come from (quote, list price + date)
"""

from __future__ import annotations

import contextvars
import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from ..data import latency_table
from ..data.scores import QualityMatrix, load_score_table
from ..errors import DataError, ValidationError
from ..problem import (
    SLO,
    Cluster,
    GPUType,
    LatencyCurve,
    LatencyProfiles,
    ModelSpec,
    Problem,
    SetupSpace,
    Workload,
    check_model_name,
)
from ..serving import architectures, memory
from ..serving.hardware import GPUS, SIMULATION_FIGURES, described_gpu, is_catalogued, register_gpu
from .cost import GpuPrices, cluster_pools

__all__ = ["ProblemInputs", "read_problem_file", "load_problem", "problem_from_dict"]

_TABLES = {
    "": {"name", "cluster", "models", "scores", "latency", "workload", "slo", "space"},
    "cluster": {"gpu", "num_gpus", "mem_gb", "gpus", "hbm_gbs", "bf16_tflops",
                "interconnect_gbs", "family"},
    "models": {"name", "architecture", "config", "params_b", "shard_mem_gb", "gated_mlp"},
    "scores": {"table", "kind", "true_table"},
    "latency": {"table", "metric", "simulate", "num_requests", "calibration"},
    "workload": {"arrival_rate_rps"},
    "slo": {"latency_ms", "aggregate", "metric"},
    "space": {"tp_degrees", "compute_tenths", "rho_min", "check_memory", "check_compute"},
}
_REQUIRED = {"": ("cluster", "models", "scores", "latency", "workload", "slo"),
             "models": ("name",), "scores": ("table",),
             "workload": ("arrival_rate_rps",), "slo": ("latency_ms",)}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# What each key's value must be, as TOML writes it: nothing is coerced, so "no" is not false and
# 2.7 is not an integer. Keys not listed (tables, [cluster] mem_gb) are checked where read.
_KINDS = {
    "bool": ("a boolean (true or false, unquoted)", lambda v: isinstance(v, bool)),
    "int": ("an integer", _is_int),
    "number": ("a finite number", _is_number),
    "str": ("a string", lambda v: isinstance(v, str)),
    "ints": ("an array of integers, e.g. [1, 2, 4]",
             lambda v: isinstance(v, (list, tuple)) and all(map(_is_int, v))),
}
_TYPES = {
    "": {"name": "str"},
    "cluster": {"gpu": "str", "num_gpus": "int"},  # figures: numbers, or tables with gpus
    "models": {"name": "str", "architecture": "str", "config": "str", "params_b": "number",
               "gated_mlp": "bool"},
    "scores": {"table": "str", "kind": "str", "true_table": "str"},
    "latency": {"table": "str", "metric": "str", "simulate": "bool", "num_requests": "int"},
    "workload": {"arrival_rate_rps": "number"},
    "slo": {"latency_ms": "number", "aggregate": "str", "metric": "str"},
    "space": {"tp_degrees": "ints", "compute_tenths": "ints", "rho_min": "number",
              "check_memory": "bool", "check_compute": "bool"},
    "prices": {"source": "str"},
}


def _toml_type(v) -> str:
    for t, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"),
                    (str, "a string"), (list, "an array"), (dict, "a table")):
        if isinstance(v, t):
            return name
    return f"a {type(v).__name__}"


def _type_error(origin: str, where: str, key: str, expected: str, v) -> ValidationError:
    return ValidationError(f"{origin}: [{where or 'top level'}] {key} must be {expected}, got "
                           f"{v!r} ({_toml_type(v)})")


@dataclass(frozen=True)
class ProblemInputs:
    """What a problem file describes: the problem, plus what replaying its plans needs.

    ``scores`` is the routed score matrix (with the token counts the table gives);
    ``architectures`` maps each model name to its architecture (named after the model), or
    ``None`` for a model given only by ``params_b`` and ``shard_mem_gb``. ``prices``: the
    file's ``[prices]`` table (user-provided $/hour per GPU type), or ``None``.
    """

    problem: Problem
    scores: QualityMatrix
    architectures: dict[str, architectures.Architecture | None]
    prices: GpuPrices | None = None


def load_problem(path: str | Path) -> Problem:
    """Read a problem file (see the module docstring); paths in it are relative to it."""
    return read_problem_file(path).problem


# Whether simulating curves (simulate = true) shows a bar: set for one read_problem_file call.
_PROGRESS = contextvars.ContextVar("routerwise_problem_file_progress", default=False)
# Whether simulate = true builds only the curves some deployable setup uses: one call.
_USABLE_ONLY = contextvars.ContextVar("routerwise_problem_file_usable_only", default=False)


def read_problem_file(path: str | Path, *, progress: bool = False,
                      usable_curves_only: bool = False) -> ProblemInputs:
    """The problem of a problem file with its score matrix and architectures.

    ``progress``: show a bar while ``simulate = true`` simulates curves (minutes on the first
    read; cached after) as ``ROUTERWISE_PROGRESS`` allows (``routerwise solve`` and ``cost``
    do; off by default, so notebooks stay quiet).

    ``usable_curves_only``: with ``simulate = true``, simulate only the curves of the
    (model, tp, compute share) options that some setup of the file's space can deploy on its
    cluster (:func:`usable_curves`; the others cannot be in any plan for this cluster, so a
    solve of this problem finds the same plan), each cached for reuse by other problems
    (``routerwise solve`` does this; ``routerwise cost``, which tries other cluster sizes,
    does not). The problem then holds only those curves, so counts of candidate setups
    (the auto solver's note, an infeasibility diagnosis) count only setups of usable
    options."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"no problem file at {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid TOML ({e})") from e
    token = _PROGRESS.set(progress)
    usable = _USABLE_ONLY.set(usable_curves_only)
    try:
        return _inputs_from_dict(doc, base_dir=path.parent, origin=str(path))
    finally:
        _USABLE_ONLY.reset(usable)
        _PROGRESS.reset(token)


def usable_curves(models, cluster: Cluster, workload: Workload, slo: SLO,
                  space: SetupSpace) -> set[tuple[str, int, int, str]] | None:
    """(model, tp, compute tenths, GPU type) of every option that some setup of ``space``
    retains on ``cluster`` (utilization window, memory and compute placement:
    :func:`routerwise.optimize.setup_space.enumerate_setups`); the GPU type is "" on a
    homogeneous cluster. None when no setup is retained or a model has no option (then
    every curve is built, so the error or diagnosis reads as without pruning). The setups do
    not depend on the curves' values, so this runs on placeholder curves."""
    from ..optimize.setup_space import enumerate_setups
    gpus = [t.name for t in cluster.gpu_types] if cluster.is_mixed else [""]
    placeholders = LatencyProfiles(tuple(
        LatencyCurve(m.name, tp, r, (1.0, 2.0), (1.0, 1.0), slo.metric, "synthetic",
                     "placeholder: which setups the space retains", g)
        for m in models for tp in space.tp_degrees for r in space.compute_tenths
        for g in gpus), slo.metric)
    try:
        probe = Problem(tuple(models), cluster, workload, placeholders, slo, space)
        retained = enumerate_setups(probe)
    except ValidationError:
        return None
    if not len(retained):
        return None
    return {(m.name, o.tp, o.compute_tenths, o.gpu)
            for s in range(len(retained))
            for m, o in zip(models, retained.setup(s).per_model)}


def _check_keys(where: str, d, origin: str) -> dict:
    if not isinstance(d, dict):
        raise ValidationError(f"{origin}: [{where}] must be a table")
    table = where.split("[")[0]
    unknown = sorted(set(d) - _TABLES[table])
    if unknown:
        raise ValidationError(f"{origin}: unknown key(s) {unknown} in [{where or 'top level'}]; "
                              f"allowed: {sorted(_TABLES[table])}")
    missing = [k for k in _REQUIRED.get(table, ()) if k not in d]
    if missing:
        raise ValidationError(f"{origin}: [{where or 'top level'}] needs {missing}")
    for key, kind in _TYPES[table].items():
        expected, ok = _KINDS[kind]
        if key in d and not ok(d[key]):
            raise _type_error(origin, where, key, expected, d[key])
    return d


def _path(base_dir: Path, value, what: str, origin: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{origin}: {what} must be a file path (a string)")
    p = Path(value)
    return p if p.is_absolute() else base_dir / p


def _model_arch(m: dict, base_dir: Path, origin: str):
    if "architecture" in m and "config" in m:
        raise ValidationError(f"{origin}: model {m['name']!r} gives both architecture and "
                              f"config; keep one")
    if "gated_mlp" in m and "config" not in m:
        raise ValidationError(f"{origin}: model {m['name']!r}: gated_mlp says how to read a "
                              f"config.json of an unknown model_type; it goes with config = "
                              f"\"config.json\" (a registered architecture knows its MLP)")
    if "config" in m:
        return architectures.from_hf_config(_path(base_dir, m["config"], "config", origin),
                                            name=m["name"], params_b=m.get("params_b"),
                                            gated_mlp=m.get("gated_mlp"))
    if "architecture" in m:
        # named after the model, so that curves, replays and the problem agree on names
        return replace(architectures.get(m["architecture"]), name=m["name"])
    return None


def _model_spec(m: dict, arch, tp_degrees, origin: str) -> ModelSpec:
    if arch is not None:
        params_b = m.get("params_b", arch.params_b)
        return ModelSpec(m["name"], params_b,
                         tuple(memory.shard_memory_table(arch, tp_degrees).items()))
    if "params_b" not in m or "shard_mem_gb" not in m:
        raise ValidationError(f"{origin}: model {m['name']!r} needs an architecture (or config), "
                              f"or both params_b and shard_mem_gb = {{1 = GB, 2 = GB, ...}}")
    mem = m["shard_mem_gb"]
    if not isinstance(mem, dict) or not mem:
        raise ValidationError(f"{origin}: model {m['name']!r}: shard_mem_gb maps tp degrees to GB")
    # TOML keys are strings: "2" is tp 2, "2.5" is no tp degree; values are GB, not true/"lots"
    if not all(str(k).isdecimal() and _is_number(v) for k, v in mem.items()):
        raise ValidationError(f"{origin}: model {m['name']!r}: shard_mem_gb keys are tp degrees "
                              f"(integers) and values GB (finite numbers), e.g. "
                              f"{{1 = 17.5, 2 = 9.2}}; got {mem}")
    return ModelSpec(m["name"], m["params_b"], tuple(sorted((int(k), v) for k, v in mem.items())))


def problem_from_dict(doc: dict, *, base_dir: str | Path = ".", origin: str = "problem") -> Problem:
    """The problem a parsed problem file describes (see the module docstring)."""
    return _inputs_from_dict(doc, base_dir=base_dir, origin=origin).problem


def _inputs_from_dict(doc: dict, *, base_dir: str | Path, origin: str) -> ProblemInputs:
    base_dir = Path(base_dir)
    _check_keys("", doc, origin)
    cl = _check_keys("cluster", doc["cluster"], origin)
    specs: dict = {}  # GPUs this file describes (registered for the replay and consistency)
    cluster = _cluster(cl, origin, specs)
    gpu = cluster.gpu
    gpu_name = gpu.name

    sp = _check_keys("space", doc.get("space", {}), origin)
    space = SetupSpace(**{k: tuple(v) if isinstance(v, list) else v for k, v in sp.items()})

    raw_models = doc["models"]
    if not isinstance(raw_models, list) or not raw_models:
        raise ValidationError(f"{origin}: give at least one [[models]] table")
    models, archs = [], []
    for k, m in enumerate(raw_models):
        _check_keys(f"models[{k}]", m, origin)
        try:
            check_model_name(m["name"])
        except ValidationError as e:
            raise ValidationError(f"{origin}: [models[{k}]] {e}") from None
        first = next(j for j, other in enumerate(raw_models) if other.get("name") == m["name"])
        if first < k:
            raise ValidationError(f"{origin}: [models[{first}]] and [models[{k}]] are both named "
                                  f"{m['name']!r}; give each model its own name (the score and "
                                  f"curve tables key on it)")
        arch = _model_arch(m, base_dir, origin)
        models.append(_model_spec(m, arch, space.tp_degrees, origin))
        archs.append(arch)
    names = [m.name for m in models]

    sc = _check_keys("scores", doc["scores"], origin)
    kind = sc.get("kind", "measured")
    if kind not in ("measured", "predicted"):
        raise ValidationError(f"{origin}: [scores] kind is 'measured' or 'predicted', got {kind!r}")
    qm = load_score_table(_path(base_dir, sc["table"], "scores.table", origin), names)
    truth: QualityMatrix | None = None
    if sc.get("true_table"):
        truth = load_score_table(_path(base_dir, sc["true_table"], "scores.true_table", origin),
                                 names)
        if truth.prompt_ids != qm.prompt_ids:
            raise DataError(f"{origin}: true_table must score the same prompts in the same order "
                            f"as table")

    wl = _check_keys("workload", doc["workload"], origin)
    rate = wl["arrival_rate_rps"]
    workload = Workload(qm.scores, rate, tuple(names),
                        true_scores=None if truth is None else truth.scores,
                        prompt_ids=qm.prompt_ids, label=f"{kind} scores from {sc['table']}")

    slo_d = _check_keys("slo", doc["slo"], origin)
    lat = _check_keys("latency", doc["latency"], origin)
    metric = str(lat.get("metric", slo_d.get("metric", "ttft_mean")))
    if "metric" in slo_d and slo_d["metric"] != metric:
        raise ValidationError(f"{origin}: [slo] metric {slo_d['metric']!r} differs from [latency] "
                              f"metric {metric!r}")
    slo = SLO(slo_d["latency_ms"], metric, slo_d.get("aggregate", "mean"))
    needed = None
    if _USABLE_ONLY.get() and lat.get("simulate", False) is True:
        needed = usable_curves(models, cluster, workload, slo, space)
    if cluster.is_mixed:
        profiles, curve_note = _mixed_profiles(lat, archs, names, cluster, space, qm, base_dir,
                                               origin, metric, specs, needed)
        gpu_note = "GPUs: " + ", ".join(f"{n} x {t.name} ({t.mem_gb:.1f} GB each)"
                                        for t, n in cluster.pools)
    else:
        profiles, curve_note = _profiles(lat, archs, names, gpu_name, space, qm, base_dir,
                                         origin, metric, specs, needed)
        gpu_note = f"GPU: {gpu.name}, {gpu.mem_gb:.1f} GB per GPU"
    gpu_note += "".join(f"; {s.name}: {s.source}" for s in specs.values())

    assumptions = (
        f"scores: {qm.num_prompts} prompts x {len(names)} models from {sc['table']} "
        f"({kind}, user-provided)",
        curve_note,
        gpu_note,
    )
    problem = Problem(tuple(models), cluster, workload, profiles, slo, space,
                      name=str(doc.get("name", Path(origin).stem)), assumptions=assumptions)
    prices = _prices(doc["prices"], problem, origin) if "prices" in doc else None
    return ProblemInputs(problem, qm, dict(zip(names, archs)), prices)


# [prices]: optional, for `routerwise cost` (routerwise.planning.cost.GpuPrices)
_TABLES[""] = _TABLES[""] | {"prices"}
_TABLES["prices"] = {"usd_per_hour", "source"}
_REQUIRED["prices"] = ("usd_per_hour",)


def _prices(d, problem: Problem, origin: str) -> GpuPrices:
    """The ``[prices]`` table, checked to price every GPU type of the file's cluster."""
    _check_keys("prices", d, origin)
    table = d["usd_per_hour"]
    if not isinstance(table, dict):
        raise ValidationError(f"{origin}: [prices] usd_per_hour maps GPU type names to $/hour, "
                              f"e.g. usd_per_hour = {{ \"A100-80GB\" = 2.0 }}; got {table!r}")
    try:
        prices = GpuPrices(table, source=str(d.get("source", f"user-provided in {origin}")))
        prices.check_covers(t.name for t, _ in cluster_pools(problem.cluster))
    except ValidationError as e:
        raise ValidationError(f"{origin}: [prices] {e}") from None
    return prices


# [cluster] keys that describe a GPU the catalogue lacks (beside mem_gb)
_DESCRIBE_KEYS = ("hbm_gbs", "bf16_tflops", "interconnect_gbs", "family")


def _cluster(cl: dict, origin: str, specs: dict) -> Cluster:
    """[cluster]: gpu + num_gpus (one type), or gpus = {type = count, ...} (several types);
    mem_gb (and the figures of a described GPU) is a number for one type, or {type = value}
    for uncatalogued types of a mixed one. Described GPUs are registered and put in specs."""
    if "gpus" in cl:
        if "gpu" in cl or "num_gpus" in cl:
            raise ValidationError(f"{origin}: [cluster] gives gpus = {{type = count}} and also "
                                  f"gpu / num_gpus; keep one way of saying it")
        pools, mem = cl["gpus"], cl.get("mem_gb", {})
        if not isinstance(pools, dict) or not pools:
            raise ValidationError(f"{origin}: [cluster] gpus must be a table of GPU type = count, "
                                  f"e.g. gpus = {{\"A100-80GB\" = 4, \"H100-80GB\" = 2}}")
        for key in ("mem_gb", *_DESCRIBE_KEYS):
            v = cl.get(key, {})
            if not isinstance(v, dict):
                raise ValidationError(f"{origin}: [cluster] with gpus = {{...}}, {key} is a table "
                                      f"of GPU type = value (for types not in the catalogue)")
            extra = sorted(set(v) - set(pools))
            if extra:
                raise ValidationError(f"{origin}: [cluster] {key} names GPU types {extra} that "
                                      f"are not in gpus")
        types = []
        for name, n in pools.items():
            if not _is_int(n):
                raise _type_error(origin, "cluster", f"gpus[{name!r}]", "an integer (a GPU count)",
                                  n)
            fig = {k: cl[k][name] for k in _DESCRIBE_KEYS if name in cl.get(k, {})}
            types.append((_gpu_type(name, mem.get(name), origin, f"mem_gb[{name!r}]", fig,
                                    specs), n))
        return Cluster.mixed(types)
    if "num_gpus" not in cl:
        raise ValidationError(f"{origin}: [cluster] needs num_gpus (with gpu), or gpus = "
                              f"{{type = count, ...}} for several GPU types")
    for key in ("mem_gb", *_DESCRIBE_KEYS):
        if isinstance(cl.get(key), dict):
            raise ValidationError(f"{origin}: [cluster] {key} is one value for gpu; a table "
                                  f"of types goes with gpus = {{...}}")
    fig = {k: cl[k] for k in _DESCRIBE_KEYS if k in cl}
    return Cluster(_gpu_type(cl.get("gpu", "custom"), cl.get("mem_gb"), origin, "mem_gb", fig,
                             specs), cl["num_gpus"])


def _gpu_type(name: str, mem_gb, origin: str, key: str, figures: dict, specs: dict) -> GPUType:
    if mem_gb is not None and not _is_number(mem_gb):
        raise _type_error(origin, "cluster", key, "a finite number (GB per GPU)", mem_gb)
    if figures:
        given = {"mem_gb": mem_gb, **figures}
        missing = [f"{k} ({what})" for k, _, what in SIMULATION_FIGURES if given.get(k) is None]
        if missing:
            raise ValidationError(f"{origin}: [cluster] GPU {name!r} is described by "
                                  f"{', '.join(sorted(figures))} but lacks {'; '.join(missing)}")
        for k in ("hbm_gbs", "bf16_tflops", "interconnect_gbs"):
            if k in figures and not _is_number(figures[k]):
                raise _type_error(origin, "cluster", k, "a finite number", figures[k])
        if "family" in figures and not isinstance(figures["family"], str):
            raise _type_error(origin, "cluster", "family", "a string", figures["family"])
        try:
            spec = described_gpu(name, memory_gb=mem_gb, hbm_gbs=figures["hbm_gbs"],
                                 bf16_tflops=figures["bf16_tflops"],
                                 interconnect_gbs=figures.get("interconnect_gbs", 0.0),
                                 family=figures.get("family", "ampere"))
        except ValidationError as e:
            raise ValidationError(f"{origin}: [cluster] {e}") from None
        # this file's figures win over a GPU of that name described before in this process
        specs[name] = register_gpu(spec, replace_existing=True)
        return GPUType(name, mem_gb)
    if mem_gb is not None:
        return GPUType(name, mem_gb)
    if name in GPUS:
        return GPUType(name, GPUS[name].memory_gb)
    raise ValidationError(f"{origin}: [cluster] gpu {name!r} is not in the catalogue "
                          f"{sorted(GPUS)}; give mem_gb for a custom GPU type")


def _simulation_figures_error(origin: str, gpu_name: str) -> ValidationError:
    need = "; ".join(f"{k} ({what})" for k, _, what in SIMULATION_FIGURES)
    return ValidationError(
        f"{origin}: simulate = true needs the figures of GPU {gpu_name!r}, which is not in the "
        f"catalogue ({', '.join(n for n, g in GPUS.items() if is_catalogued(g))}): "
        f"describe it in [cluster] with {need}; optionally interconnect_gbs (GB/s) and family "
        f"(\"ampere\" or \"hopper\": whose fitted step-cost efficiencies to borrow; default "
        f"ampere). Or give measured curves: table = \"curves.csv\"")


def _check_latency_choice(lat: dict, origin: str) -> None:
    """[latency] names exactly one source: a curve table or the simulator."""
    if lat.get("simulate", False) == ("table" in lat):
        raise ValidationError(f"{origin}: [latency] needs exactly one of table = \"curves.csv\" "
                              f"or simulate = true")
    if "calibration" in lat and "table" in lat:
        raise ValidationError(f"{origin}: [latency] calibration applies to simulated curves "
                              f"(simulate = true), not to a curve table")


def _calibration(lat: dict, base_dir: Path, origin: str):
    """The deployment calibration [latency] names: a file (relative to the problem file) or,
    from Python, a DeploymentCalibration or its JSON dict; None without one."""
    from ..serving.calibration import DeploymentCalibration, load_calibration
    c = lat.get("calibration")
    if c is None or isinstance(c, DeploymentCalibration):
        return c
    if isinstance(c, dict):
        return DeploymentCalibration.from_json(c, f"{origin}: [latency] calibration")
    if isinstance(c, str | Path):
        return load_calibration(_path(base_dir, str(c), "latency.calibration", origin))
    raise _type_error(origin, "latency", "calibration", "a string (a calibration file)", c)


def _mixed_profiles(lat: dict, archs, names, cluster: Cluster, space: SetupSpace,
                    qm: QualityMatrix, base_dir: Path, origin: str,
                    metric: str, specs: dict, needed=None) -> tuple[LatencyProfiles, str]:
    """Curves naming their GPU type, for every type of a mixed cluster."""
    types = [t.name for t in cluster.gpu_types]
    _check_latency_choice(lat, origin)
    if "table" in lat:
        p = _path(base_dir, lat["table"], "latency.table", origin)
        table = latency_table.read_table(p)
        prof = latency_table.to_profiles_by_gpu(table, metric, gpus=types, monotone="envelope")
        kinds = sorted(set(table["source"]))
        return prof, (f"latency: {metric} curves from {lat['table']} for {', '.join(types)} "
                      f"(source: {', '.join(kinds)})")
    curves, notes = [], []
    for t in types:
        prof, note = _profiles(lat, archs, names, t, space, qm, base_dir, origin, metric, specs,
                               needed, gpu_key=t)
        curves += [replace(c, gpu=t) for c in prof.curves]
        notes.append(note)
    return LatencyProfiles(tuple(curves), metric), "; ".join(notes)


def _profiles(lat: dict, archs, names, gpu_name: str, space: SetupSpace, qm: QualityMatrix,
              base_dir: Path, origin: str, metric: str,
              specs: dict, needed=None, gpu_key: str = "") -> tuple[LatencyProfiles, str]:
    """The curves of one GPU type; ``needed``: the (model, tp, tenths, GPU type) to simulate
    (None: all of the space; see :func:`usable_curves`), ``gpu_key`` this type's name there."""
    _check_latency_choice(lat, origin)
    if "table" in lat:
        p = _path(base_dir, lat["table"], "latency.table", origin)
        table = latency_table.read_table(p)
        prof = latency_table.to_profiles(table, metric, gpu=gpu_name, monotone="envelope")
        missing = [n for n in names if n not in prof.models]
        if missing:
            raise DataError(f"{p}: no {metric} curves on {gpu_name} for model(s) {missing}; the "
                            f"table has {sorted(prof.models)}")
        kinds = sorted(set(table["source"]))
        return prof, f"latency: {metric} curves from {lat['table']} (source: {', '.join(kinds)})"
    no_arch = [n for n, a in zip(names, archs) if a is None]
    if no_arch:
        raise ValidationError(f"{origin}: simulate = true needs an architecture or config for "
                              f"every model; missing for {no_arch}")
    gpu = specs.get(gpu_name)
    if gpu is None:
        if gpu_name not in GPUS or not is_catalogued(GPUS[gpu_name]):
            raise _simulation_figures_error(origin, gpu_name)
        gpu = GPUS[gpu_name]
    from ..serving import curve_grid
    lengths = None
    if qm.prompt_tokens is not None and qm.completion_tokens is not None:
        lengths = {a.name: curve_grid.LengthSample(qm.prompt_tokens[:, i],
                                                   qm.completion_tokens[:, i],
                                                   f"token counts of {a.name} in the score table")
                   for i, a in enumerate(archs)}
    else:
        raise ValidationError(f"{origin}: simulate = true needs prompt_tokens and output_tokens in "
                              f"the score table (the simulator replays those lengths)")
    cal = _calibration(lat, base_dir, origin)
    opts = curve_grid.GridOptions(num_requests=lat.get("num_requests", 4000),
                                  **({} if cal is None else {
                                      "calibration": cal,
                                      "engine_profile": cal.deployment.engine}))
    only = None if needed is None else sorted(
        (m, tp, r) for m, tp, r, g in needed if g == gpu_key)
    table = curve_grid.build_profile_table(
        archs, gpu, space.tp_degrees, space.compute_tenths, lengths, options=opts,
        progress=_PROGRESS.get(), only=only)
    prof = latency_table.to_profiles(table, metric, gpu=gpu_name, monotone="envelope")
    if cal is None:
        from ..serving.latency_validation import margin_label
        how = f"uncalibrated; {margin_label(opts.engine_profile)}"
    else:
        how = f"{cal.label()}; {cal.margin_label()}"
    built = ("" if only is None else
             f"; only the {len(only)} curves some deployable setup uses were simulated")
    return prof, (f"latency: {metric} curves simulated from fitted step costs for each model's "
                  f"architecture on {gpu_name} (modelled; {how}){built}")
