"""The main job: run every notebook with papermill into a results folder, then summarize.

    routerwise reproduce [--out results] [--only 03_score_variation ...] [-p NAME VALUE ...]
    python -m routerwise reproduce  (same options)

Each notebook in ``notebooks/`` runs with its default parameters (or overrides given with
``-p``) into ``<out>/notebooks/``; notebooks write figures (PNG), tables (CSV) and their key
numbers (JSON) under ``<out>``. ``<out>/summary.md`` sets our key numbers beside the paper's.
A notebook that fails stops the run with one line (:class:`NotebookFailed`) naming it, its error
and the executed notebook that holds the traceback. Nothing of an earlier run is left looking
current: before a notebook runs, the outputs of its previous run (executed notebook, numbers,
and the figures and tables that run wrote, listed in ``<out>/notebooks/<name>.run.json``) move
to ``<out>/previous/<name>/``; a success deletes them, a failure keeps them there and
``summary.md`` shows the notebook as FAILED until it succeeds.
``--jobs N`` runs up to N notebooks at once, each in its own process and kernel (they write
disjoint files; each run record lists the files its notebook wrote, as every write goes
through :mod:`routerwise.paper.record`), longest first by the last run's wall time; the
outputs are the same as one at a time. The notebooks share solved panels through the cache
(``ROUTERWISE_SHARE_PANELS=1``, :func:`routerwise.paper.experiments.shared_panel_checkpoint`:
keyed on the problem and the kit's source, so only the same code reuses a result; set it to
0 to solve every panel again).
The request is checked before any notebook runs (:func:`check_request`): unknown notebooks, an
empty ``--only``, a parameter no selected notebook has, a value that is not a literal of the
default's type, or one the notebook's own ``params.check`` refuses (its type and range) are
errors that list what is allowed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
import time
from pathlib import Path

from ..errors import DataError, MissingDependency, RouterWiseError, ValidationError
from ..io import atomic_write, write_json
from . import params as _params

__all__ = ["NOTEBOOKS", "NotebookFailed", "repo_root", "notebooks_dir", "notebook_parameters",
           "notebook_checks", "check_request", "check_parameters", "run", "unit_of",
           "format_value", "write_summary", "add_arguments", "run_from_args", "store_outputs",
           "main", "require_paper_extra"]

NOTEBOOKS = ("00_bring_your_own", "01_setup_space", "02_latency_profiles", "03_score_variation", "04_exact_vs_dual",
             "05_beyond_the_paper", "06_gpu_inventory", "07_measure_latencies",
             "08_latency_validation", "09_headline_explained", "10_scale", "11_cost_frontier",
             "12_calibrate", "13_live_check")


def repo_root() -> Path:
    """The checkout this module runs from (notebooks/ and data/ beside routerwise/), else cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "notebooks").is_dir() else Path.cwd()


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


class NotebookFailed(RouterWiseError, RuntimeError):
    """A notebook of a reproduction run raised. ``notebook``: its name; ``executed``: the
    executed notebook holding the traceback; ``previous``: where the outputs of its previous
    run were moved (None when there were none); ``not_run``: the notebooks left unrun."""

    def __init__(self, message: str, *, notebook: str, executed: Path,
                 previous: Path | None = None, not_run=()):
        super().__init__(message)
        self.notebook, self.executed, self.previous = notebook, executed, previous
        self.not_run = tuple(not_run)


def _read_notebook(name: str) -> dict:
    path = notebooks_dir() / f"{name}.ipynb"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read notebook {path}: {e}") from e


def notebook_parameters(name: str) -> dict:
    """The ``parameters`` cell of notebook ``name`` as {parameter: default value}.

    Read from the notebook file (cells tagged ``parameters``; each statement
    ``name: type = literal`` or ``name = literal``); nothing is executed.
    """
    nb = _read_notebook(name)
    out = {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or "parameters" not in cell.get("metadata", {}).get(
                "tags", []):
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        for node in ast.parse(src).body:
            # ``name = literal`` or papermill's typed form ``name: type = literal``
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(value)
                except ValueError:
                    out[target.id] = None  # not a literal: any override type accepted
    return out


def notebook_checks(name: str) -> dict:
    """{parameter: (type name, constraint)} of notebook ``name`` as its ``params.check`` cell
    applies them (:func:`routerwise.paper.params.declared_checks`); nothing is executed but
    the notebook's imports."""
    return _params.declared_checks(_read_notebook(name).get("cells", []), f"notebook {name}")


def check_parameters(names, parameters: dict, texts: dict | None = None) -> None:
    """Check each value in ``parameters`` as every notebook of ``names`` declaring it will
    (type and range), before any kernel starts; :class:`ValidationError` otherwise. ``texts``:
    the ``-p`` text of each value, for the message."""
    for name in names:
        checks = notebook_checks(name)
        for key, value in parameters.items():
            type_name, constraint = checks.get(key, (None, None))
            if type_name is None:
                continue
            try:
                _params.check_value(key, value, type_name, constraint)
            except ValidationError as e:
                given = f"-p {key} {(texts or {}).get(key, repr(value))!r}"
                raise ValidationError(f"{given}: {e} (notebook {name})") from None


def _compatible(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_request(only, raw_parameters) -> tuple[list[str], dict]:
    """Validate a reproduction request before anything runs; returns (notebooks, parameters).

    ``only``: notebook names (None: all; an empty list is an error). ``raw_parameters``:
    (name, text) pairs from ``-p``; each text is a Python literal (a bare word is taken as a
    string only where the notebook's default is a string). Every name must be a parameter of
    at least one selected notebook and every value must have its default's type
    (int and float mix). Raises :class:`ValidationError` saying what to fix.
    """
    if only is not None:
        if not only:
            raise ValidationError(f"--only needs at least one notebook name; choose from "
                                  f"{list(NOTEBOOKS)}")
        unknown = sorted(set(only) - set(NOTEBOOKS))
        if unknown:
            raise ValidationError(f"unknown notebooks {unknown}; choose from {list(NOTEBOOKS)}")
    names = [n for n in NOTEBOOKS if not only or n in only]
    declared = {n: notebook_parameters(n) for n in names}
    params = {}
    for key, text in raw_parameters:
        defaults = [d[key] for d in declared.values() if key in d]
        if not defaults:
            listing = "; ".join(f"{n}: {', '.join(d) or '(none)'}" for n, d in declared.items())
            raise ValidationError(f"-p {key}: no selected notebook has a parameter {key!r}. "
                                  f"Parameters by notebook: {listing}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as e:
            if all(isinstance(d, str) for d in defaults):
                value = text  # a bare word for a string parameter
            elif all(isinstance(d, bool) for d in defaults) and \
                    text.strip().lower() in ("true", "false"):
                value = _params.from_text(text, "bool")   # YAML's spelling, as papermill -y
            else:
                why = e.msg if isinstance(e, SyntaxError) else str(e)
                raise ValidationError(f"-p {key} {text!r} is not a Python literal ({why}); the "
                                      f"notebook default is {defaults[0]!r}, e.g. "
                                      f"-p {key} {repr(defaults[0])!r}") from None
        bad = [d for d in defaults if not _compatible(value, d)]
        if bad:
            raise ValidationError(f"-p {key} {text!r} gives a {type(value).__name__}; the "
                                  f"notebook default is {bad[0]!r} ({type(bad[0]).__name__})")
        params[key] = value
    check_parameters(names, params, dict(raw_parameters))
    return names, params


RUN_RECORD = "{}.run.json"     # under <out>/notebooks/: status and files of a notebook's last run
PREVIOUS = "previous"          # <out>/previous/<name>/: the outputs a running or failed run replaced


def _snapshot(out: Path) -> dict:
    """{relative path: mtime_ns} of every result file (run records and moved-aside files
    excluded): comparing two snapshots gives what one notebook wrote."""
    found = {}
    for p in out.rglob("*"):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and not rel.startswith(PREVIOUS + "/") and not rel.endswith(".run.json"):
            found[rel] = p.stat().st_mtime_ns
    return found


def _run_record(out: Path, name: str) -> dict | None:
    path = out / "notebooks" / RUN_RECORD.format(name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _move_previous(out: Path, name: str) -> Path | None:
    """Move the outputs of ``name``'s previous run to ``<out>/previous/<name>/`` (replacing
    what an older run left there); returns that folder, or None when there was nothing."""
    rec = _run_record(out, name) or {}
    files = set(rec.get("files", ())) | {f"notebooks/{name}.ipynb", f"numbers/{name}.json"}
    dest = out / PREVIOUS / name
    if dest.exists():
        shutil.rmtree(dest)
    moved = False
    for rel in sorted(files):
        src = out / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest / rel)
            moved = True
    (out / "notebooks" / RUN_RECORD.format(name)).unlink(missing_ok=True)
    return dest if moved else None


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its children reaped so far (the
    kernel, and the processes it started and reaped): a notebook's CPU is the difference
    around its run."""
    import resource
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _machine() -> dict:
    """What a measured wall time depends on: the cores and the load while the notebook ran."""
    try:
        load = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):       # not on every platform
        load = None
    return {"cpu_count": os.cpu_count(), "load_avg_1min": load}


def _run_line(rec: dict | None) -> str | None:
    """``measured wall time 41 s (finished ..., 2 CPUs, load average 1.3)`` of a run record."""
    if not rec or rec.get("wall_s") is None:
        return None
    where = ", ".join(x for x in (
        f"finished {rec['finished']}" if rec.get("finished") else "",
        f"{rec['cpu_count']} CPUs" if rec.get("cpu_count") else "",
        f"load average {rec['load_avg_1min']:g}" if rec.get("load_avg_1min") is not None
        else "") if x)
    return f"measured wall time {rec['wall_s']:.0f} s" + (f" ({where})" if where else "")


def _parameters_line(rec: dict) -> str | None:
    """The parameters a notebook's numbers were recorded with, the non-default ones marked."""
    params = rec.get("parameters")
    if not params:
        return None
    changed = rec.get("non_default_parameters") or {}
    if not changed:
        return "parameters: the notebook's defaults"
    return ("parameters: **not the defaults**: "
            + ", ".join(f"{k}={v!r}" for k, v in changed.items())
            + (f"; others default ({', '.join(k for k in params if k not in changed)})"
               if len(params) > len(changed) else ""))


def _failure_line(e: BaseException) -> str:
    """The error of a failed notebook in one line: papermill's cell error, else the exception."""
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    if ename is None:
        ename, evalue = type(e).__name__, str(e)
    where = f" in cell [{e.exec_count}]" if getattr(e, "exec_count", None) else ""
    first = next((ln.strip() for ln in str(evalue).splitlines() if ln.strip()), "")
    return f"{where}: {ename}" + (f": {first}" if first else "")


# ipykernel logs "Kernel is running over TCP without encryption" at WARNING on every start (12
# times a run, amid the log); the kernel's own log is quiet below ERROR. Cell warnings and
# errors go to the notebook's outputs, not this log, so nothing of the notebooks is hidden.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]

PAPER_EXTRA = ("papermill", "ipykernel", "matplotlib")   # pyproject.toml's paper extra


def require_paper_extra() -> None:
    """:class:`MissingDependency` naming the extra when the packages that run the notebooks
    are missing (a core-only install, ``pip install -e .``), before anything starts."""
    import importlib.util
    missing = [m for m in PAPER_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(
            f"running the notebooks needs the paper extra, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: pip install -e \".[paper]\" "
            f"(or `make install` for the pinned versions)")


# Typical wall seconds per notebook (measured 2026-12-02, idle 2-core machine, warm caches):
# the order of a parallel run when no earlier run recorded its own times (longest first).
TYPICAL_WALL_S = {"00_bring_your_own": 4, "01_setup_space": 11, "02_latency_profiles": 4,
                  "03_score_variation": 45, "04_exact_vs_dual": 32, "05_beyond_the_paper": 16,
                  "06_gpu_inventory": 2, "07_measure_latencies": 3, "08_latency_validation": 25,
                  "09_headline_explained": 49, "10_scale": 14, "11_cost_frontier": 7}


def _written_log(out: Path, name: str) -> Path:
    return out / "notebooks" / f"{name}.written"


def _execute(task) -> tuple[float, float, str | None]:
    """Run one notebook in this (worker) process: (wall s, CPU s, its failure line or None).
    Module level: pickles by reference for spawned workers."""
    name, src, dst, cwd, params, env = task
    os.environ.update(env)
    import papermill as pm
    t0, c0 = time.perf_counter(), _cpu_s()
    line = None
    try:
        pm.execute_notebook(src, dst, parameters=params, cwd=cwd, progress_bar=False,
                            kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS)
    except Exception as e:       # noqa: BLE001 - reported to the parent as one line
        line = _failure_line(e)
    return time.perf_counter() - t0, _cpu_s() - c0, line


def _record_run(out: Path, name: str, wall_s: float, cpu_s: float, written,
                error_line: str | None) -> None:
    write_json(out / "notebooks" / RUN_RECORD.format(name),
               {"notebook": name, "status": "ok" if error_line is None else "failed",
                "files": sorted(written),
                "error": None if error_line is None else error_line.lstrip(" :"),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                "wall_s": round(wall_s, 1), "cpu_s": round(cpu_s, 1), **_machine()})


def _run_parallel(out: Path, names: list[str], parameters: dict, bar, jobs: int) -> list[Path]:
    """Run ``names`` on ``jobs`` worker processes (see the module notes)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from ..settings import WRITTEN_LOG_ENV

    def expected(name):
        rec = _run_record(out, name) or {}
        return rec.get("wall_s") or TYPICAL_WALL_S.get(name, 0)

    order = sorted(names, key=lambda n: -expected(n))
    done, failed, previous = {}, {}, {}
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"))
    futures = {}
    try:
        for name in order:
            dst = out / "notebooks" / f"{name}.ipynb"
            dst.parent.mkdir(parents=True, exist_ok=True)
            previous[name] = _move_previous(out, name)
            log = _written_log(out, name)
            log.unlink(missing_ok=True)
            own = notebook_parameters(name)
            task = (name, str(notebooks_dir() / f"{name}.ipynb"), str(dst), str(out),
                    {k: v for k, v in parameters.items() if k in own},
                    {WRITTEN_LOG_ENV: str(log)})
            futures[pool.submit(_execute, task)] = name
        for fut in cf.as_completed(futures):
            name = futures[fut]
            if fut.cancelled():
                continue
            wall_s, cpu_s, line = fut.result()
            log = _written_log(out, name)
            written = set(log.read_text(encoding="utf-8").split()) if log.is_file() else set()
            log.unlink(missing_ok=True)
            written.add(f"notebooks/{name}.ipynb")
            written = {rel for rel in written if (out / rel).is_file()}
            _record_run(out, name, wall_s, cpu_s, written, line)
            bar.update(1)
            if line is None:
                if previous[name] is not None:
                    shutil.rmtree(previous[name])
                bar.write(f"{name}: {wall_s:.0f} s -> {out / 'notebooks' / f'{name}.ipynb'}")
                done[name] = out / "notebooks" / f"{name}.ipynb"
            else:
                failed[name] = line
                for other in futures:        # the ones not started yet are not run
                    other.cancel()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        write_summary(out)
        name = next(n for n in order if n in failed)
        rest = [n for n in names if n not in done and n not in failed]
        for n in rest:                       # never started: put their previous outputs back
            if previous[n] is not None:
                _restore_previous(out, n, previous[n])
        dst = out / "notebooks" / f"{name}.ipynb"
        raise NotebookFailed(
            f"notebook {name} failed{failed[name]}. The executed notebook with the traceback: "
            f"{dst}" + (f"; the outputs of its previous run were moved to {previous[name]}"
                        if previous[name] else "")
            + "; summary.md marks it FAILED"
            + (f"; also failed: {', '.join(n for n in failed if n != name)}"
               if len(failed) > 1 else "")
            + (f"; not run: {', '.join(rest)}" if rest else ""),
            notebook=name, executed=dst, previous=previous[name], not_run=rest)
    write_summary(out)
    return [done[n] for n in names if n in done]


def _restore_previous(out: Path, name: str, folder: Path) -> None:
    """Move the outputs :func:`_move_previous` set aside back (a notebook that never ran)."""
    for src in sorted(p for p in folder.rglob("*") if p.is_file()):
        dest = out / src.relative_to(folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
    shutil.rmtree(folder)


def run(out: Path, only=None, parameters: dict | None = None, progress: bool = True,
        jobs: int = 1) -> list[Path]:
    """Run the notebooks ``only`` (default: all) into ``out``; see :func:`check_request`.

    A notebook that raises stops the run: :class:`NotebookFailed` (one line: the notebook, its
    error, the executed notebook with the traceback), after ``summary.md`` is rewritten with
    the notebook marked FAILED. ``jobs``: notebooks run at once (see the module notes); with
    more than one, the notebooks already running when one fails finish and are recorded.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValidationError(f"jobs must be a whole number >= 1 (notebooks run at once), "
                              f"got {jobs!r}")
    from ..settings import SHARE_PANELS_ENV
    before = os.environ.get(SHARE_PANELS_ENV)
    os.environ.setdefault(SHARE_PANELS_ENV, "1")   # panels solved once (see the module notes)
    try:
        return _run(out, only, parameters, progress, jobs)
    finally:     # the kernels had it; this process's own later calls keep their setting
        if before is None:
            os.environ.pop(SHARE_PANELS_ENV, None)


def _run(out: Path, only, parameters: dict | None, progress: bool, jobs: int) -> list[Path]:
    require_paper_extra()
    import papermill as pm

    from ..settings import progress_bar

    names, _ = check_request(only, [])
    unknown = sorted(set(parameters or {}) - {k for n in names for k in notebook_parameters(n)})
    if unknown:
        raise ValidationError(f"parameters {unknown} are in none of the notebooks {names}")
    check_parameters(names, parameters or {})
    out = out.resolve()
    os.environ["ROUTERWISE_RESULTS_DIR"] = str(out)
    # one bar here (plain lines in a log), made before the kernels' setting below
    bar = progress_bar(names, desc="notebooks", unit="nb", disable=not progress)
    # no bars inside the stored notebooks (their timings differ between runs)
    os.environ.setdefault("ROUTERWISE_PROGRESS", "off")
    if jobs > 1 and len(names) > 1:
        try:
            return _run_parallel(out, names, parameters or {}, bar, jobs)
        finally:
            bar.close()
    done = []
    try:
        for idx, name in enumerate(bar):
            bar.set_postfix_str(name)
            src = notebooks_dir() / f"{name}.ipynb"
            dst = out / "notebooks" / f"{name}.ipynb"
            dst.parent.mkdir(parents=True, exist_ok=True)
            own = notebook_parameters(name)
            previous = _move_previous(out, name)
            before = _snapshot(out)
            t0, c0 = time.perf_counter(), _cpu_s()
            error = None
            try:
                pm.execute_notebook(str(src), str(dst),
                                    parameters={k: v for k, v in (parameters or {}).items()
                                                if k in own},
                                    cwd=str(out), progress_bar=False, kernel_name="python3",
                                    extra_arguments=KERNEL_ARGUMENTS)
            except BaseException as e:       # noqa: BLE001 - recorded, then raised again below
                error = e
            wall_s, cpu_s = time.perf_counter() - t0, _cpu_s() - c0
            after = _snapshot(out)
            written = sorted(rel for rel, t in after.items() if before.get(rel) != t)
            _record_run(out, name, wall_s, cpu_s, written,
                        None if error is None else _failure_line(error))
            if error is None:
                if previous is not None:
                    shutil.rmtree(previous)
                bar.write(f"{name}: {wall_s:.0f} s -> {dst}")
                done.append(dst)
                continue
            write_summary(out)
            if not isinstance(error, Exception):
                raise error                  # Ctrl-C and the like: recorded, not reworded
            rest = names[idx + 1:]
            raise NotebookFailed(
                f"notebook {name} failed{_failure_line(error)}. The executed notebook with the "
                f"traceback: {dst}"
                + (f"; the outputs of its previous run were moved to {previous}" if previous
                   else "")
                + "; summary.md marks it FAILED"
                + (f"; not run: {', '.join(rest)}" if rest else ""),
                notebook=name, executed=dst, previous=previous, not_run=rest) from error
    finally:
        bar.close()
    write_summary(out)
    return done


def store_outputs(out: Path, notebooks: Path | None = None) -> list[Path]:
    """Copy the executed notebooks of a run into ``notebooks/`` as the committed outputs that
    nbval compares against, without papermill's run metadata (timings, machine paths)."""
    dest = notebooks or notebooks_dir()
    stored = []
    for src in sorted((Path(out) / "notebooks").glob("*.ipynb")):
        nb = json.loads(src.read_text())
        if any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", [])):
            raise DataError(f"{src} holds an error output: fix the notebook before storing it")
        nb["metadata"].pop("papermill", None)
        for cell in nb["cells"]:
            md = cell.get("metadata", {})
            md.pop("papermill", None)
            md.pop("execution", None)
            if md.get("tags") == []:
                md.pop("tags")
        # papermill inserts a cell with the injected parameters: committed notebooks keep defaults
        nb["cells"] = [c for c in nb["cells"]
                       if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
        stored.append(atomic_write(dest / src.name, json.dumps(nb, indent=1, ensure_ascii=False)
                                   + "\n"))
    return stored


UNITS = {"ms": "ms", "s": "s", "rps": "req/s", "gb": "GB"}


def unit_of(key: str) -> str:
    """The unit a recorded number's key names: ``%`` when a ``pct`` word is in it, else its
    last word (after a trailing ``_max`` / ``_min`` / ``_median``, before any ``[...]``
    index) if that is ``ms``, ``s``, ``rps`` or ``gb``; else ""."""
    words = key.split("[", 1)[0].lower().split("_")
    if "pct" in words:
        return "%"
    while len(words) > 1 and words[-1] in ("max", "min", "median"):
        words.pop()
    return UNITS.get(words[-1], "")


def format_value(v) -> str:
    """A recorded value for a table: floats to 4 significant digits, ints with thousands
    separators, None as n/a."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        text = f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
        return "0" if text in ("-0", "-0.0") else text      # -0.0 is zero, not a sign
    return str(v)


def write_summary(out: Path) -> Path:
    """``<out>/summary.md``: the headline rows beside the paper's, then every notebook's
    recorded numbers rounded, with unit, kind and provenance. A notebook whose last run
    failed is listed as FAILED first, and none of its numbers are shown."""
    from .experiments import PAPER
    failed = {}
    for p in sorted((out / "notebooks").glob(RUN_RECORD.format("*"))):
        rec = _run_record(out, p.name[:-len(RUN_RECORD.format(""))])
        if rec and rec.get("status") == "failed":
            failed[rec["notebook"]] = rec
    records = {p.stem: json.loads(p.read_text()) for p in sorted((out / "numbers").glob("*.json"))
               if p.stem not in failed}
    nums = {k: r["numbers"] for k, r in records.items()}
    lines = ["# Reproduction summary", ""]
    for nb, rec in failed.items():
        lines += [f"**FAILED: {nb}** (run finished {rec.get('finished')}): {rec.get('error')}. "
                  f"Its traceback is in `notebooks/{nb}.ipynb`; its numbers are left out below"
                  + (f", the {len(rec['files'])} file(s) it wrote before failing are listed in "
                     f"`notebooks/{RUN_RECORD.format(nb)}`" if rec.get("files") else "")
                  + (f" and the outputs of the run before are in `{PREVIOUS}/{nb}/`"
                     if (out / PREVIOUS / nb).is_dir() else "") + ".", ""]
    lines += ["Numbers recorded by the notebooks (see `numbers/*.json`); the paper's where it reports one.",
              "", "| finding | paper | ours | notebook |", "|---|---|---|---|"]

    def row(what, paper, keys, nb, fmt="{}"):
        keys = (keys,) if isinstance(keys, str) else keys
        v = [nums.get(nb, {}).get(k) for k in keys]
        ours = fmt.format(*v) if all(x is not None for x in v) else "n/a"
        changed = (records.get(nb) or {}).get("non_default_parameters")
        if changed and ours != "n/a":
            # a one-panel run's number is not the paper's grid's: say so beside it
            ours += " (run with " + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"
        lines.append(f"| {what} | {paper} | {ours} | {nb} |")

    row("setups after utilization filter, 3 models, G=4", "669 (ours: exact count)",
        "utilization_3m_G4", "01_setup_space")
    row("setups after utilization filter, 4 models, G=4", "16,660", "utilization_4m_G4",
        "01_setup_space")
    row("retained (paper's checks), 3 models, G=4", f"~{PAPER['retained_3m_G4']}",
        "paper_retained_3m_G4", "01_setup_space")
    row("retained (memory + compute placed exactly), 3 models, G=4", "not checked",
        "ours_retained_3m_G4", "01_setup_space")
    row("largest score variation across setups", f"{PAPER['variation_pct']:.0f}%",
        "variation_pct_max", "03_score_variation", "{:.1f}%")
    row("best-score range across setups", f"{PAPER['score_min']}-{PAPER['score_max']}",
        ("score_min", "score_max"), "03_score_variation", "{:.3f}-{:.3f}")
    for lad, label in (("routeprofile", "RouteProfile"), ("llmrouter", "LLMRouter")):
        row(f"{label} ladder: largest variation measured / the most its scores allow",
            "87% / not reported", (f"{lad}_measured_max_pct", f"{lad}_max_variation_allowed_pct"),
            "09_headline_explained", "{:.1f}% / {:.1f}%")
    row("dual-price method's largest gap to the optimum", "not reported", "dual_gap_pct_max",
        "04_exact_vs_dual", "{:.3f}%")
    row("default solver's largest gap to the MILP optimum", "n/a", "default_gap_pct_max",
        "04_exact_vs_dual", "{:.4f}%")
    row("slowest MILP solve (s)", "no exact method", "milp_time_s_max", "04_exact_vs_dual",
        "{:.1f}")
    row("predicted score of the optimum", "reported only", "predicted_score_opt",
        "05_beyond_the_paper", "{:.3f}")
    row("realized (true) score of the optimum", "not reported", "realized_score_opt",
        "05_beyond_the_paper", "{:.3f}")
    row("plan mean TTFT: predicted / simulated replay (ms)", "live test: +7.5% to +20% over target",
        ("replay_predicted_ms", "replay_simulated_mean_ms"), "05_beyond_the_paper", "{:.0f} / {:.0f}")
    row("largest synthetic instance solved: models x GPUs, proven gap", "4 models, 8 GPUs",
        ("largest_models", "largest_gpus", "largest_gap_pct"), "10_scale",
        "{} x {}, {:.3f}%")
    lines += ["", "All latencies are simulated from fitted step costs; scores are RouteProfile "
              "(measured) routed on predicted scores (fitted). See each notebook for details.", ""]
    runs = {nb: _run_line(_run_record(out, nb)) for nb in records}
    if any(runs.values()):
        total = sum((_run_record(out, nb) or {}).get("wall_s") or 0 for nb in records)
        lines += [f"Measured wall time of the runs that produced these numbers: {total:.0f} s "
                  f"over {sum(1 for r in runs.values() if r)} notebook(s), listed per notebook "
                  f"below (they grow with the machine's load).", ""]
    for nb, rec in records.items():
        prov = rec.get("provenance") or {}
        lines += [f"## {nb}", ""]
        if prov:
            lines += [f"kit {prov.get('kit_version')}, commit `{prov.get('git_commit')}`, data "
                      f"registry sha256 `{str(prov.get('data_registry_sha256'))[:12]}`"
                      + (f", problem `{prov['problem']}`" if prov.get("problem") else ""), ""]
        extra = [x for x in (runs[nb], _parameters_line(rec)) if x]
        if extra:
            lines += ["; ".join(extra), ""]
        lines += ["| key | value | unit | kind |", "|---|---|---|---|"]
        kinds = rec.get("labels") or {}
        lines += [f"| {k} | {format_value(v)} | {unit_of(k)} | {kinds.get(k, '')} |"
                  for k, v in rec["numbers"].items()]
        lines.append("")
    return atomic_write(out / "summary.md", "\n".join(lines))


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The reproduce options (shared by ``python -m routerwise.paper.reproduce`` and
    ``routerwise reproduce``)."""
    ap.add_argument("--out", default="results", type=Path,
                    help="results folder (default: ./results)")
    ap.add_argument("--only", nargs="*", default=None, metavar="NOTEBOOK",
                    help=f"run only these notebooks (of {', '.join(NOTEBOOKS)})")
    ap.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                    help="notebooks run at once, each in its own process (default 1; "
                         "`make reproduce` uses 2)")
    ap.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                    help="override a parameter in every notebook that has it (Python literal; "
                         "a bare word for a string parameter)")
    return ap


def run_from_args(args) -> int:
    """Check the request, run it and print where the summary is."""
    require_paper_extra()    # checking -p values imports the notebooks' modules (matplotlib)
    names, params = check_request(args.only, args.p)
    t0 = time.perf_counter()
    jobs = getattr(args, "jobs", 1)
    # jobs passed only when asked for: run's signature without it stays a valid stand-in
    run(Path(args.out), names, params, **({"jobs": jobs} if jobs != 1 else {}))
    print(f"done in {time.perf_counter() - t0:.0f} s; see {Path(args.out).resolve() / 'summary.md'}",
          file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = add_arguments(argparse.ArgumentParser(prog="python -m routerwise.paper.reproduce",
                                               description=__doc__.splitlines()[0]))
    args = ap.parse_args(argv)
    try:
        return run_from_args(args)
    except RouterWiseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
