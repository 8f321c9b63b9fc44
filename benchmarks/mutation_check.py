"""Mutation check: would the tests notice a plausible bug in the kit's critical code?

Each entry of :data:`MUTATIONS` is one small behaviour change (a flipped comparison, a dropped
constraint, an off-by-one, a wrong sign) in a place whose failure would silently corrupt
results: MILP rows, the SLO check, verification, the router's price rule, the paper's dual
prices, setup pruning and placement, the serving simulator, the compute-share law, the
baselines, the Lagrangian bounds, atomic writes and the data mirror. For each, the repository's
``routerwise/ profiling/ tests/ data/ pyproject.toml`` are copied to a fresh temporary folder
(the working tree is never touched), the mutation is applied there, and a small pytest
selection for that module runs against the copy: a failing selection KILLS the mutation, a
passing one lets it SURVIVE (the tests cannot see that bug).

Every mutation's ``old`` snippet must occur exactly once in its file, or the run stops before
testing anything: when the code moves on, the list must be updated, never silently skipped.
Before the mutations, the union of all selections runs once on the unmutated copy; it must
pass, since a selection that fails anyway would "kill" every mutation.

Each mutant gets its own cache folder (``ROUTERWISE_CACHE_DIR`` inside the copy), so a mutated
simulator never writes tables into, or reads tables from, the caller's cache. The data mirror,
offline and thread settings are taken from the caller's environment.

    python benchmarks/mutation_check.py                     # all, with tests/test_mutation_kills.py
    python benchmarks/mutation_check.py --existing-only     # without it: the "before" count
    python benchmarks/mutation_check.py --only router-price-sign --json out.json
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ("routerwise", "profiling", "tests", "data", "pyproject.toml")
KILL_FILE = "tests/test_mutation_kills.py"


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str                 # relative to the repository root
    old: str                  # must occur exactly once in ``file``
    new: str
    why: str                  # the bug it stands for
    tests: tuple[str, ...]    # existing pytest node ids or files that should notice it
    kills: tuple[str, ...] = ()   # test names in KILL_FILE written for this mutation


SOLVERS = "tests/test_solvers.py::"
# Known optima on hand-solvable instances, and three solvers against each other on a small
# synthetic instance (about 6 s): the fast core of tests/test_solvers.py.
SOLVER_CORE = (SOLVERS + "test_constant_latency_known_optimum",
               SOLVERS + "test_quadratic_latency_mass_known_optimum",
               SOLVERS + "test_heterogeneous_prompts_known_optimum",
               SOLVERS + "test_tail_slo_caps_each_model",
               SOLVERS + "test_infeasible_slo_is_explained_not_crashed",
               SOLVERS + "test_solvers_agree_on_random_instances[synthetic-3m-G4_1]")
DUAL_PRICE = (SOLVERS + "test_dual_price_method_fails_on_a_degenerate_linear_instance",
              SOLVERS + "test_projection_onto_capped_simplex")
SHARE = ("tests/test_stepcost.py::test_compute_share_law",
         "tests/test_stepcost.py::test_measured_share_table_replaces_the_law",
         "tests/test_stepcost.py::test_share_slowdowns_from_a_measured_step_table")

MUTATIONS: tuple[Mutation, ...] = (
    Mutation("milp-gpu-compute", "routerwise/optimize/milp.py",
             'lp += load(g, "compute") <= 10, f"gpu_compute[{g}]"',
             'lp += load(g, "compute") <= 20, f"gpu_compute[{g}]"',
             "per-GPU compute row (4) too loose: MPS shares above 100% on one GPU",
             SOLVER_CORE + (SOLVERS + "test_milp_lp_file_names_constraints",),
             ("test_milp_respects_per_gpu_compute",)),
    Mutation("milp-load-range", "routerwise/optimize/milp.py",
             'lp += w[i, k] <= float(wtop) * x[i, k], f"load_range[{i},{k}]"',
             'lp += w[i, k] <= float(wtop), f"load_range[{i},{k}]"',
             "row (8) without x: traffic may go to an option the setup did not choose",
             SOLVER_CORE),
    Mutation("milp-slo-row", "routerwise/optimize/milp.py",
             'lp += pulp.lpSum(t.values()) <= problem.slo.latency_ms, "slo"',
             'lp += pulp.lpSum(t.values()) <= 1.05 * problem.slo.latency_ms, "slo"',
             "SLO row (10) 5% looser than tau",
             SOLVER_CORE),
    Mutation("mass-root-sign", "routerwise/optimize/latency.py",
             "root = (-a + np.sqrt(a * a + 4 * q * limit_ms)) / (2 * q)",
             "root = (-a - np.sqrt(a * a + 4 * q * limit_ms)) / (2 * q)",
             "wrong root of phi(w) = tau: the largest routable fraction collapses",
             SOLVER_CORE),
    Mutation("verify-slo-dropped", "routerwise/optimize/solution.py",
             '        if L > tau * (1 + latency_rtol) + 1e-9:\n'
             '            fail(f"latency {L:.4f} ms violates the SLO tau = {tau} ms")\n',
             "",
             "verify() no longer rejects a plan whose recomputed latency exceeds tau",
             SOLVER_CORE + ("tests/test_mixed_gpus.py::test_verify_rejects_a_shard_on_the_wrong_type",),
             ("test_verify_rejects_a_plan_over_the_slo",)),
    Mutation("verify-compute-total", "routerwise/optimize/solution.py",
             "if sp.check_compute and max(comp) > 10:",
             "if sp.check_compute and max(comp) > 10 * G:",
             "verify() compares one GPU's compute with the whole cluster's",
             SOLVER_CORE + ("tests/test_mixed_gpus.py::test_verify_rejects_a_shard_on_the_wrong_type",),
             ("test_verify_rejects_an_oversubscribed_gpu",)),
    Mutation("router-price-sign", "routerwise/planning/online_router.py",
             "v = s - self.prices", "v = s + self.prices",
             "router adds the prices instead of subtracting them",
             (SOLVERS + "test_heterogeneous_prompts_known_optimum",),
             ("test_router_realizes_the_planned_fractions",)),
    Mutation("router-tie-break", "routerwise/planning/online_router.py",
             "i = int(tied[np.argmax(lag)])", "i = int(tied[np.argmin(lag)])",
             "ties go to the model AHEAD of its planned share",
             (SOLVERS + "test_heterogeneous_prompts_known_optimum",),
             ("test_router_splits_tied_prompts_as_planned",)),
    Mutation("dual-price-step-sign", "routerwise/optimize/dual_price.py",
             "alpha = alpha + (cfg.price_step0 / np.sqrt(k)) * (n / N - w)",
             "alpha = alpha + (cfg.price_step0 / np.sqrt(k)) * (w - n / N)",
             "subgradient price step of the paper's method with the wrong sign",
             SOLVER_CORE + DUAL_PRICE),
    Mutation("setup-budget-strict", "routerwise/optimize/setup_space.py",
             "ok = (new_total + min_rest[i] <= hi) & (new_total + max_rest[i] >= lo)",
             "ok = (new_total + min_rest[i] < hi) & (new_total + max_rest[i] >= lo)",
             "utilization window loses its upper end (C = G)",
             ("tests/test_setups.py",)),
    Mutation("setup-exact-fallback", "routerwise/optimize/setup_space.py",
             '            pl = place_pools(demands, pool_of, pools, method="exact",\n'
             '                             check_compute=sp.check_compute, '
             'check_memory=sp.check_memory)',
             '            pl = place_pools(demands, pool_of, pools, method="ffd",\n'
             '                             check_compute=sp.check_compute, '
             'check_memory=sp.check_memory)',
             "setups FFD cannot place are dropped instead of judged by the exact search",
             ("tests/test_setups.py",)),
    Mutation("ffd-memory-check", "routerwise/optimize/placement.py",
             "and used_m[g] + mem <= cm + _EPS):", "and used_m[g] <= cm + _EPS):",
             "first-fit ignores the new shard's own memory need",
             ("tests/test_setups.py",)),
    Mutation("sim-kv-admission", "routerwise/serving/simulator.py",
             "if B < max_seqs and kv_reserved + plist[i] + olist[i] <= cap:",
             "if B < max_seqs and kv_reserved + plist[i] + olist[i] < cap:",
             "a request that exactly fills the KV cache is never admitted",
             ("tests/test_simulator.py",),
             ("test_simulator_admits_a_request_that_exactly_fills_the_cache",)),
    Mutation("sim-max-seqs", "routerwise/serving/simulator.py",
             "if (B + m >= max_seqs or tokens + p > budget",
             "if (B + m > max_seqs or tokens + p > budget",
             "prefill admits one sequence beyond max_num_seqs",
             ("tests/test_simulator.py",)),
    Mutation("sim-saturation-threshold", "routerwise/serving/simulator.py",
             "saturated = bool(growth > max(SAT_MIN_GROWTH, SAT_GROWTH_FRACTION * measured)",
             "saturated = bool(growth > min(SAT_MIN_GROWTH, SAT_GROWTH_FRACTION * measured)",
             "saturation threshold takes the smaller of its two floors",
             ("tests/test_simulator.py",),
             ("test_a_short_overload_at_the_end_is_not_saturation",)),
    Mutation("share-interp-in-rho", "routerwise/serving/compute_share.py",
             "return float(np.interp(1.0 / rho, 1.0 / shares[::-1], vals[::-1]))",
             "return float(np.interp(rho, shares, vals))",
             "measured slowdowns interpolated in rho instead of 1/rho",
             SHARE),
    Mutation("baseline-farthest-first", "routerwise/optimize/baselines.py",
             "for d in np.unique(np.round(dist, 9)):",
             "for d in np.unique(np.round(dist, 9))[::-1]:",
             "Equal-Split / Size-Proportional take the FARTHEST setup from their target",
             (SOLVERS + "test_solvers_agree_on_random_instances[synthetic-3m-G4_1]",),
             ("test_nearest_setup_baselines_take_the_nearest_setup",)),
    Mutation("lagrangian-beta-sign", "routerwise/optimize/bounds.py",
             "base = dual_part(ctx.groups, alpha) + beta * ctx.problem.slo.latency_ms",
             "base = dual_part(ctx.groups, alpha) - beta * ctx.problem.slo.latency_ms",
             "Lagrangian setup bound loses beta*tau: it can cut off the optimal setup",
             SOLVER_CORE + (SOLVERS + "test_exact_search_certificate_and_time_limit",)),
    Mutation("atomic-cleanup-dropped", "routerwise/io.py",
             "        if tmp_path.exists():\n            tmp_path.unlink()",
             "        pass",
             "a failed write leaves its temporary file behind",
             ("tests/test_datasets.py",)),
    Mutation("mirror-checksum-skipped", "routerwise/data/registry.py",
             "        return _verify(p, src)", "        return p",
             "files read from ROUTERWISE_DATA_MIRROR are handed out unverified",
             ("tests/test_datasets.py",),
             ("test_a_corrupt_mirror_file_is_rejected",)),
    # The five mutations the reliability review found surviving, each now with its test.
    Mutation("checkpoint-key-check", "routerwise/parallel.py",
             "        ok = got_key == key.encode()", "        ok = True",
             "a signed checkpoint of another task is taken as this task's result",
             ("tests/test_reliability_checkpoints.py", "tests/test_executors.py")),
    Mutation("redact-case", "routerwise/redact.py",
             'words = re.split(r"[-_.]+", str(name).lower())',
             'words = re.split(r"[-_.]+", str(name))',
             "upper-case secret names (HF_TOKEN, ?API_KEY=) are no longer masked",
             ("tests/test_reliability_secrets.py", "tests/test_redact.py")),
    Mutation("true-table-order", "routerwise/planning/problem_file.py",
             "        if truth.prompt_ids != qm.prompt_ids:",
             "        if False:",
             "a reordered true table silently changes the realized score",
             ("tests/test_reliability_inputs.py", "tests/test_bring_your_own.py")),
    Mutation("latency-positive", "routerwise/problem.py",
             "if np.any(x < 0) or np.any(y <= 0):", "if np.any(x < 0):",
             "latency curves with zero or negative latencies are accepted",
             ("tests/test_reliability_inputs.py", "tests/test_problem.py")),
    Mutation("exact-time-limit-bound", "routerwise/optimize/exact_search.py",
             "    bound = max(best_val, float(ub[unsolved].max()) if unsolved.any() else best_val)",
             "    bound = best_val",
             "a search stopped by its time limit claims its incumbent is optimal (a false gap of 0)",
             ("tests/test_reliability_solvers.py",
              SOLVERS + "test_exact_search_certificate_and_time_limit")),
)


def check_snippets(mutations) -> None:
    """Stop unless every ``old`` snippet occurs exactly once in its file."""
    bad = []
    for m in mutations:
        path = REPO / m.file
        n = path.read_text(encoding="utf-8").count(m.old) if path.is_file() else -1
        if n != 1:
            where = "file missing" if n < 0 else f"found {n} times"
            bad.append(f"{m.id}: {m.file}: {where}: {m.old!r}")
    if bad:
        sys.exit("mutation snippets must occur exactly once (update MUTATIONS to the code):\n  "
                 + "\n  ".join(bad))


def selection(m: Mutation, with_kills: bool) -> list[str]:
    kills = [f"{KILL_FILE}::{k}" for k in m.kills] if with_kills else []
    return list(m.tests) + kills


def copy_repo(dest: Path) -> None:
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".cache", ".pytest_cache")
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=skip)
        elif src.is_file():
            shutil.copy2(src, dest / name)


def run_pytest(root: Path, nodes: list[str], timeout_s: float) -> tuple[str, float, str]:
    """(outcome, seconds, first failing test or note): outcome is "passed", "failed",
    "timeout" or "error" (rc 3-5: pytest itself broke, or nothing was collected)."""
    env = dict(os.environ)
    env.update(PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1",
               ROUTERWISE_CACHE_DIR=str(root / ".cache" / "test"))
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(k, "1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *nodes]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, f"over {timeout_s:g} s"
    dt = time.perf_counter() - t0
    out = p.stdout + p.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, flags=re.M)
    if p.returncode == 0:
        return "passed", dt, ""
    if p.returncode in (1, 2):      # 2: interrupted, e.g. the mutant broke an import
        return "failed", dt, failed[0] if failed else out.strip().splitlines()[-1][:120]
    return "error", dt, f"pytest rc {p.returncode}: {out.strip().splitlines()[-1][:120]}"


def check_import_path(root: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    got = subprocess.run([sys.executable, "-c", "import routerwise; print(routerwise.__file__)"],
                         cwd=root, env=env, capture_output=True, text=True).stdout.strip()
    if not got.startswith(str(root)):
        sys.exit(f"the copy's routerwise is not the one imported ({got!r}); an installed "
                 f"copy shadows PYTHONPATH")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--existing-only", action="store_true",
                    help=f"run only the existing tests, not {KILL_FILE} (the 'before' count)")
    ap.add_argument("--only", nargs="*", default=None, metavar="ID", help="mutation ids to run")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per pytest run")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the run of every selection on the unmutated copy")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT", help="write results here")
    ap.add_argument("--list", action="store_true", help="print the mutations and exit")
    args = ap.parse_args(argv)

    muts = list(MUTATIONS)
    if args.only:
        unknown = set(args.only) - {m.id for m in muts}
        if unknown:
            sys.exit(f"unknown mutation ids {sorted(unknown)}; --list shows them")
        muts = [m for m in muts if m.id in args.only]
    check_snippets(muts)
    with_kills = not args.existing_only and (REPO / KILL_FILE).is_file()
    if args.list:
        for m in muts:
            print(f"{m.id:26s} {m.file}: {m.why}\n    tests: {' '.join(selection(m, with_kills))}")
        return 0

    with tempfile.TemporaryDirectory(prefix="routerwise-mutants-") as tmp:
        tmp = Path(tmp)
        if not args.no_baseline:
            base = tmp / "original"
            copy_repo(base)
            check_import_path(base)
            nodes = list(dict.fromkeys(n for m in muts for n in selection(m, with_kills)))
            outcome, dt, note = run_pytest(base, nodes, args.timeout * 3)
            print(f"baseline (unmutated): {outcome} in {dt:.0f} s {note}", flush=True)
            if outcome != "passed":
                print("the selections must pass on the original code; fix them first",
                      file=sys.stderr)
                return 2
            shutil.rmtree(base)
        rows = []
        for m in muts:
            root = tmp / m.id
            copy_repo(root)
            path = root / m.file
            path.write_text(path.read_text(encoding="utf-8").replace(m.old, m.new, 1),
                            encoding="utf-8")
            outcome, dt, note = run_pytest(root, selection(m, with_kills), args.timeout)
            result = {"passed": "SURVIVED", "failed": "killed", "timeout": "killed (timeout)"}.get(
                outcome, "ERROR")
            rows.append({"id": m.id, "file": m.file, "why": m.why, "result": result,
                         "seconds": round(dt, 1), "first_failure": note,
                         "tests": selection(m, with_kills)})
            print(f"{m.id:26s} {result:16s} {dt:6.1f} s  {note}", flush=True)
            shutil.rmtree(root)

    survived = [r["id"] for r in rows if r["result"] == "SURVIVED"]
    errors = [r["id"] for r in rows if r["result"] == "ERROR"]
    print()
    print("| mutation | file | result | first failing test |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['id']} | {r['file']} | {r['result']} | {r['first_failure'] or '-'} |")
    print(f"\n{len(rows)} mutations, {len(rows) - len(survived) - len(errors)} killed, "
          f"{len(survived)} survived{', ' + str(len(errors)) + ' errors' if errors else ''}"
          f" ({'existing tests only' if not with_kills else 'with ' + KILL_FILE})")
    if args.json is not None:
        sys.path.insert(0, str(REPO))
        from routerwise.io import write_json
        write_json(args.json, {"with_kill_tests": with_kills, "mutations": rows,
                               "survived": survived, "errors": errors})
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
