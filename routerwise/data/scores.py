"""Per-prompt, per-model quality scores: the N x M input the optimizer routes on.

The paper scores prompts with a regressor trained on RouterBench. RouterBench is not among the
kit's public sources, so the same kind of matrix is built from two public score tables (see
``data/README.md``, "Quality"); every score here is **measured**: copied from the source's
evaluation of each model's actual response.

:func:`load_routeprofile`
    ulab-uiuc/RouteProfile ``route_data/routing_test_data.json``: 600 prompts (12 tasks x 50)
    x 8 open models from 3B to 141B, the score being ``model_performance[m]["task_performance"]``,
    with the prompt and completion token counts of each response; parameter counts come from
    the model card ``profile_data/candidate_models.json``. Models are ordered by parameter count,
    smallest first (ties by name), so the columns read as a size ladder. human_eval and mbpp are
    dropped by default: every model scores about 0 on them (an evaluation artifact of the
    source, not a property of the models), which would only add noise rows to a routing study.
:func:`load_llmrouter`
    ulab-uiuc/LLMRouter ``data/dcrouter_preprocessed/{train,test}.json``: 5,608 + 500 prompts x
    9 open models, no token counts, no task labels. Models are ordered by name (sorted), since
    the source's key order differs between its two files. The ``scores`` field is a dict or a
    string holding a Python dict literal; strings are parsed with :func:`ast.literal_eval`,
    which accepts literals only and never runs code.

Files are obtained only through :func:`routerwise.data.registry.fetch`, which verifies checksums and
raises :class:`~routerwise.errors.MissingDataFile` / :class:`~routerwise.errors.ChecksumMismatch`.
A file that passes its checksum but does not parse as documented raises
:class:`~routerwise.errors.DataError` naming the file and the row.
"""

from __future__ import annotations

import ast
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, ValidationError
from ..problem import Workload
from .registry import fetch, provenance

__all__ = ["ROUTEPROFILE_KEYS", "LLMROUTER_KEYS", "ROUTEPROFILE_ARTIFACT_TASKS", "QualityMatrix",
           "load_routeprofile", "load_llmrouter", "SCORE_TABLE_COLUMNS", "load_score_table"]

ROUTEPROFILE_KEYS = ("routeprofile.routing_test", "routeprofile.candidate_models")
LLMROUTER_KEYS = {"train": ("llmrouter.train",), "test": ("llmrouter.test",),
                  "all": ("llmrouter.train", "llmrouter.test")}
ROUTEPROFILE_ARTIFACT_TASKS = ("human_eval", "mbpp")


@dataclass(frozen=True, eq=False)
class QualityMatrix:
    """Measured quality of M models on N prompts, with what is known about each prompt.

    ``scores[j, i]`` in [0, 1] is model ``model_names[i]`` on prompt ``prompt_ids[j]``.
    ``prompt_tokens`` / ``completion_tokens`` (N x M ints) are the source's token counts of the
    request and of the model's response, or ``None`` when the source has none. ``params_b`` maps
    each model to its parameter count in billions from the source's model card (``None`` when
    there is no card). ``notes`` say what was parsed, excluded or substituted, and why.

    Arrays are read-only; every method returns a new matrix and appends a note saying what it
    changed, so a matrix carries its own derivation.
    """

    source: tuple[str, ...]
    model_names: tuple[str, ...]
    prompt_ids: tuple[str, ...]
    tasks: tuple[str, ...]
    prompts: tuple[str, ...]
    scores: np.ndarray
    prompt_tokens: np.ndarray | None = None
    completion_tokens: np.ndarray | None = None
    params_b: dict[str, float] | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        names = tuple(str(m) for m in self.model_names)
        ids = tuple(str(p) for p in self.prompt_ids)
        object.__setattr__(self, "source", tuple(self.source))
        object.__setattr__(self, "model_names", names)
        object.__setattr__(self, "prompt_ids", ids)
        object.__setattr__(self, "tasks", tuple(str(t) for t in self.tasks))
        object.__setattr__(self, "prompts", tuple(str(p) for p in self.prompts))
        object.__setattr__(self, "notes", tuple(self.notes))
        if not names or len(set(names)) != len(names):
            raise ValidationError(f"model_names must be non-empty and distinct, got {names}")
        dup = [p for p, c in Counter(ids).items() if c > 1]
        if dup:
            raise ValidationError(f"prompt_ids must be unique; repeated: {dup[:5]}")
        n, m = len(ids), len(names)
        if n == 0:
            raise ValidationError("a QualityMatrix needs at least one prompt")
        if len(self.tasks) != n or len(self.prompts) != n:
            raise ValidationError(f"{n} prompt_ids but {len(self.tasks)} tasks and "
                                  f"{len(self.prompts)} prompts; give one of each per prompt")
        s = np.array(self.scores, dtype=float, copy=True)
        if s.shape != (n, m):
            raise ValidationError(f"scores has shape {s.shape}, expected ({n}, {m}) "
                                  f"(prompts x models)")
        bad = ~np.isfinite(s) | (s < 0) | (s > 1)
        if bad.any():
            j, i = np.argwhere(bad)[0]
            raise ValidationError(f"scores must be finite and in [0, 1]; prompt {ids[j]!r}, "
                                  f"model {names[i]!r} has {s[j, i]!r}")
        s.setflags(write=False)
        object.__setattr__(self, "scores", s)
        for field in ("prompt_tokens", "completion_tokens"):
            a = getattr(self, field)
            if a is None:
                continue
            t = np.array(a, copy=True)
            if t.shape != (n, m) or not np.issubdtype(t.dtype, np.integer) or (t < 0).any():
                raise ValidationError(f"{field} must be an ({n}, {m}) array of non-negative "
                                      f"integers or None, got shape {t.shape}, dtype {t.dtype}")
            t.setflags(write=False)
            object.__setattr__(self, field, t)
        if self.params_b is not None:
            p = {str(k): float(v) for k, v in self.params_b.items()}
            missing = [k for k in names if k not in p]
            if missing or any(not (math.isfinite(p[k]) and p[k] > 0) for k in names):
                raise ValidationError(f"params_b must give a positive parameter count (billions) "
                                      f"for every model; missing {missing}, got {p}")
            object.__setattr__(self, "params_b", {k: p[k] for k in names})

    @property
    def num_prompts(self) -> int:
        return len(self.prompt_ids)

    @property
    def num_models(self) -> int:
        return len(self.model_names)

    def select_models(self, names: Iterable[str]) -> QualityMatrix:
        """Keep models ``names`` in that order (columns of every per-model array follow)."""
        names = tuple(names)
        unknown = [n for n in names if n not in self.model_names]
        if unknown or not names or len(set(names)) != len(names):
            raise ValidationError(
                f"select_models needs a non-empty list of distinct known model names; "
                f"unknown: {unknown}, asked: {list(names)}; known: {list(self.model_names)}")
        cols = [self.model_names.index(n) for n in names]
        return replace(
            self, model_names=names, scores=self.scores[:, cols],
            prompt_tokens=_take_cols(self.prompt_tokens, cols),
            completion_tokens=_take_cols(self.completion_tokens, cols),
            params_b=None if self.params_b is None else {n: self.params_b[n] for n in names},
            notes=self.notes + (f"selected models {list(names)}",))

    def exclude_tasks(self, tasks: Iterable[str]) -> QualityMatrix:
        """Drop every prompt whose task is in ``tasks`` (names must exist in the matrix)."""
        tasks = tuple(tasks)
        if not tasks:
            return self
        known = sorted(set(self.tasks))
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise ValidationError(f"exclude_tasks: unknown tasks {unknown}; known: {known}")
        drop = set(tasks)
        keep = [j for j, t in enumerate(self.tasks) if t not in drop]
        if not keep:
            raise ValidationError(f"excluding {list(tasks)} would leave no prompts")
        return self._rows(keep, f"excluded tasks {list(tasks)} "
                                 f"({self.num_prompts - len(keep)} prompts)")

    def subset(self, rows: Sequence[int] | np.ndarray) -> QualityMatrix:
        """Keep the prompts at integer positions ``rows`` (in that order) or where a boolean
        mask of length N is true."""
        r = np.asarray(rows)
        if r.dtype == bool:
            if r.shape != (self.num_prompts,):
                raise ValidationError(f"a boolean row mask needs length {self.num_prompts}, "
                                      f"got shape {r.shape}")
            r = np.flatnonzero(r)
        elif r.size and not np.issubdtype(r.dtype, np.integer):
            raise ValidationError(f"rows must be integer positions or a boolean mask, got "
                                  f"dtype {r.dtype}")
        r = r.astype(int).ravel()
        if r.size == 0:
            raise ValidationError("subset needs at least one row")
        if r.min() < -self.num_prompts or r.max() >= self.num_prompts:
            raise ValidationError(f"row positions must lie in [0, {self.num_prompts}), got "
                                  f"{r.min()}..{r.max()}")
        return self._rows(r.tolist(), f"subset of {r.size} of {self.num_prompts} prompts")

    def to_workload(self, arrival_rate_rps: float, models: Iterable[str] | None = None, *,
                    true_scores: QualityMatrix | None = None, label: str = "") -> Workload:
        """A :class:`routerwise.problem.Workload` routing on these scores at
        ``arrival_rate_rps`` (req/s), over ``models`` in that order (default: all).

        ``true_scores``: realized scores of the same prompts (e.g. measured, when these are
        predicted), reported beside the routed ones; same prompts in the same order."""
        qm = self if models is None else self.select_models(models)
        truth = None
        if true_scores is not None:
            if not isinstance(true_scores, QualityMatrix):
                raise ValidationError(f"true_scores must be a QualityMatrix, got "
                                      f"{type(true_scores).__name__}")
            if true_scores.prompt_ids != qm.prompt_ids:
                raise ValidationError("true_scores must score the same prompts in the same order")
            truth = true_scores.select_models(qm.model_names).scores
        return Workload(qm.scores, arrival_rate_rps, qm.model_names, true_scores=truth,
                        prompt_ids=qm.prompt_ids,
                        label=label or f"scores from {', '.join(qm.source)}")

    def to_frame(self) -> pd.DataFrame:
        """Tidy table, one row per (prompt, model): prompt_id, task, model, score, and
        prompt_tokens / completion_tokens / params_b where known. Prompt text is left out
        (join on ``prompt_id`` against ``prompts`` when needed)."""
        n, m = self.scores.shape
        df = pd.DataFrame({
            "prompt_id": np.repeat(np.array(self.prompt_ids, dtype=object), m),
            "task": np.repeat(np.array(self.tasks, dtype=object), m),
            "model": np.tile(np.array(self.model_names, dtype=object), n),
            "score": self.scores.ravel(),
        })
        if self.prompt_tokens is not None:
            df["prompt_tokens"] = self.prompt_tokens.ravel()
        if self.completion_tokens is not None:
            df["completion_tokens"] = self.completion_tokens.ravel()
        if self.params_b is not None:
            df["params_b"] = df["model"].map(self.params_b).astype(float)
        return df

    def _rows(self, keep: list[int], note: str) -> QualityMatrix:
        return replace(
            self, prompt_ids=tuple(self.prompt_ids[j] for j in keep),
            tasks=tuple(self.tasks[j] for j in keep),
            prompts=tuple(self.prompts[j] for j in keep), scores=self.scores[keep],
            prompt_tokens=None if self.prompt_tokens is None else self.prompt_tokens[keep],
            completion_tokens=(None if self.completion_tokens is None
                               else self.completion_tokens[keep]),
            notes=self.notes + (note,))


def _take_cols(a: np.ndarray | None, cols: list[int]) -> np.ndarray | None:
    return None if a is None else a[:, cols]


def _read_json(key: str) -> tuple[Path, Any]:
    path = fetch(key)
    try:
        with open(path, encoding="utf-8") as f:
            return path, json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} (source {key!r}) is not valid UTF-8 JSON: {e}. Fetch a fresh "
                        f"copy of {provenance(key)}") from e


def _row_error(path: Path, row: int, what: str) -> DataError:
    return DataError(f"{path}: row {row}: {what}. The file does not have the documented layout; "
                     f"check that it is the pinned version")


def _score(path: Path, row: int, model: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise _row_error(path, row, f"score of model {model!r} is {v!r}, not a number in [0, 1]")
    return float(v)


def _tokens(path: Path, row: int, model: str, field: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _row_error(path, row, f"{field} of model {model!r} is {v!r}, not a non-negative "
                                    f"integer")
    return v


def _str_field(path: Path, row: int, rec: Any, field: str) -> str:
    if not isinstance(rec, dict):
        raise _row_error(path, row, f"expected an object, got {type(rec).__name__}")
    v = rec.get(field)
    if not isinstance(v, str):
        raise _row_error(path, row, f"field {field!r} is missing or not a string ({v!r:.60})")
    return v


def _model_card_params(key: str, models: Sequence[str]) -> dict[str, float]:
    path, card = _read_json(key)
    if not isinstance(card, dict):
        raise DataError(f"{path}: expected an object keyed by model name, got "
                        f"{type(card).__name__}")
    params = {}
    for m in models:
        entry = card.get(m)
        v = entry.get("parameters") if isinstance(entry, dict) else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise DataError(f"{path}: model {m!r} has no positive 'parameters' entry "
                            f"(got {v!r}); the score file names it, so the card must too")
        params[m] = float(v)
    return params


def load_routeprofile(exclude_tasks: Sequence[str] = ROUTEPROFILE_ARTIFACT_TASKS
                      ) -> QualityMatrix:
    """RouteProfile's 600 x 8 score matrix (measured), 500 x 8 after the default exclusion.

    Prompt ids are ``f"{task}/{k}"`` with ``k`` the prompt's position within its task in file
    order. A call whose ``success`` flag is false keeps the score the source recorded for it
    (0 when it recorded none: a failed call returns no answer); failures are counted per model
    in ``notes``. Pass ``exclude_tasks=()`` to keep human_eval and mbpp.
    """
    key_scores, key_card = ROUTEPROFILE_KEYS
    path, rows = _read_json(key_scores)
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{path}: expected a non-empty JSON list of prompt records")
    models: tuple[str, ...] | None = None
    ids, tasks, prompts, metrics = [], [], [], {}
    scores, ptok, ctok = [], [], []
    per_task: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for r, rec in enumerate(rows):
        task = _str_field(path, r, rec, "task_name")
        query = _str_field(path, r, rec, "query")
        perf = rec.get("model_performance")
        if not isinstance(perf, dict) or not perf:
            raise _row_error(path, r, "field 'model_performance' is missing or empty")
        if models is None:
            models = tuple(perf)
        elif set(perf) != set(models):
            raise _row_error(path, r, f"models {sorted(perf)} differ from row 0's "
                                      f"{sorted(models)}")
        s_row, p_row, c_row = [], [], []
        for m in models:
            e = perf[m]
            if not isinstance(e, dict):
                raise _row_error(path, r, f"model {m!r}: expected an object")
            ok = e.get("success")
            if not isinstance(ok, bool):
                raise _row_error(path, r, f"model {m!r}: 'success' is {ok!r}, not a boolean")
            v = e.get("task_performance")
            if not ok:
                failures[m] += 1
                v = 0.0 if v is None else v
            s_row.append(_score(path, r, m, v))
            p_row.append(_tokens(path, r, m, "prompt_tokens", e.get("prompt_tokens")))
            c_row.append(_tokens(path, r, m, "completion_tokens", e.get("completion_tokens")))
        ids.append(f"{task}/{per_task[task]}")
        per_task[task] += 1
        tasks.append(task)
        prompts.append(query)
        metrics.setdefault(task, rec.get("metric"))
        scores.append(s_row)
        ptok.append(p_row)
        ctok.append(c_row)
    assert models is not None
    params = _model_card_params(key_card, models)
    order = sorted(range(len(models)), key=lambda i: (params[models[i]], models[i]))
    names = tuple(models[i] for i in order)
    notes = [
        f"scores: measured, {provenance(key_scores)}: model_performance[m].task_performance; "
        f"metric per task: {dict(sorted(metrics.items()))}",
        "token counts: measured, prompt_tokens and completion_tokens of each model's response",
        f"params_b: the 'parameters' field of {provenance(key_card)} (total parameters; its "
        f"'size' label differs for the mixture-of-experts models)",
        "models ordered by parameter count, smallest first",
        ("failed calls (success=false) per model: " + str(dict(failures))) if failures
        else "every call has success=true",
    ]
    qm = QualityMatrix(source=ROUTEPROFILE_KEYS, model_names=names, prompt_ids=ids,
                       tasks=tasks, prompts=prompts, scores=np.array(scores)[:, order],
                       prompt_tokens=np.array(ptok, dtype=np.int64)[:, order],
                       completion_tokens=np.array(ctok, dtype=np.int64)[:, order],
                       params_b=params, notes=tuple(notes))
    exclude_tasks = tuple(exclude_tasks)
    if not exclude_tasks:
        return qm
    task_of = np.array(qm.tasks)
    means = {t: round(float(qm.scores[task_of == t].mean()), 3) for t in exclude_tasks
             if t in qm.tasks}
    out = qm.exclude_tasks(exclude_tasks)
    why = ("; human_eval and mbpp score about 0 for every model in this source (an evaluation "
           "artifact), so they carry no routing signal"
           if set(exclude_tasks) & set(ROUTEPROFILE_ARTIFACT_TASKS) else "")
    return replace(out, notes=out.notes + (
        f"mean score over all models of the excluded tasks (measured): {means}{why}",))


def _parse_scores(path: Path, row: int, v: Any) -> dict:
    if isinstance(v, str):
        try:
            v = ast.literal_eval(v)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
            raise _row_error(path, row, f"'scores' string is not a Python dict literal "
                                        f"({type(e).__name__}: {e})") from e
    if not isinstance(v, dict) or not v or not all(isinstance(k, str) for k in v):
        raise _row_error(path, row, f"'scores' is not a non-empty dict keyed by model name "
                                    f"(got {type(v).__name__})")
    return v


def load_llmrouter(split: str = "train") -> QualityMatrix:
    """LLMRouter's score matrix (measured): ``"train"`` 5,608, ``"test"`` 500, ``"all"`` 6,108
    prompts, x 9 models in sorted name order.

    Prompt ids are ``f"{split}/{k}"`` (``"train/0"``, ``"test/17"``; with ``"all"`` the train
    rows come first). There are no task labels (``tasks`` are ``""``) and no token counts.
    Some prompt texts occur in both splits; the count is recorded in ``notes`` for ``"all"``,
    and :func:`routerwise.data.score_predictor.fit_predict_scores` reports it for any train/test pair.
    """
    if split not in LLMROUTER_KEYS:
        raise ValidationError(f"split must be one of {list(LLMROUTER_KEYS)}, got {split!r}")
    names: tuple[str, ...] | None = None
    ids, prompts, scores = [], [], []
    string_rows = 0
    for key in LLMROUTER_KEYS[split]:
        part = key.split(".")[1]
        path, rows = _read_json(key)
        if not isinstance(rows, list) or not rows:
            raise DataError(f"{path}: expected a non-empty JSON list of prompt records")
        for r, rec in enumerate(rows):
            q = _str_field(path, r, rec, "question")
            raw = rec.get("scores")
            string_rows += isinstance(raw, str)
            d = _parse_scores(path, r, raw)
            if names is None:
                names = tuple(sorted(d))
            if set(d) != set(names):
                raise _row_error(path, r, f"models {sorted(d)} differ from the first row's "
                                          f"{list(names)}")
            scores.append([_score(path, r, m, d[m]) for m in names])
            ids.append(f"{part}/{r}")
            prompts.append(q)
    assert names is not None
    notes = ["scores: measured, " + "; ".join(provenance(k) for k in LLMROUTER_KEYS[split]),
             f"'scores' given as a dict literal string on {string_rows} rows (parsed with "
             f"ast.literal_eval), as a JSON object on the rest",
             "models in sorted name order; no task labels, no token counts"]
    repeated = len(prompts) - len(set(prompts))
    if repeated:
        notes.append(f"{repeated} prompt texts occur more than once (across the train and test "
                     f"files); k-fold figures on this matrix are optimistic")
    return QualityMatrix(source=LLMROUTER_KEYS[split], model_names=names, prompt_ids=ids,
                         tasks=("",) * len(ids), prompts=prompts, scores=np.array(scores),
                         notes=tuple(notes))


# --------------------------------------------------------------------------------------------
# Your own scores
# --------------------------------------------------------------------------------------------
SCORE_TABLE_COLUMNS = ("prompt_id", "model", "score")
_OPTIONAL_INT_COLUMNS = {"prompt_tokens": "prompt_tokens", "completion_tokens": "completion_tokens",
                         "output_tokens": "completion_tokens"}
_KNOWN_COLUMNS = SCORE_TABLE_COLUMNS + tuple(_OPTIONAL_INT_COLUMNS) + ("task", "prompt")
_INT64_MAX = np.iinfo(np.int64).max


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _row(path: Path | None, label) -> str:
    """Where row ``label`` (of the table as read) is: a CSV line (the header is line 1), or a
    Parquet or DataFrame (``path`` None) row (1-based)."""
    if path is None or _is_parquet(path):
        return f"row {int(label) + 1}"
    return f"line {int(label) + 2}"


def _check_ids(df: pd.DataFrame, path: Path | None, where: str) -> None:
    for col in ("prompt_id", "model"):
        if col in df.columns:
            blank = df[col].isna() | (df[col].astype(str).str.strip() == "")
            if blank.any():
                raise DataError(f"{where}: {col} is empty in {int(blank.sum())} row(s), first at "
                                f"{_row(path, blank.idxmax())}; every row needs a {col}")


def _read_table_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"no score table at {path}")
    try:
        if _is_parquet(path):
            df = pd.read_parquet(path)
        else:
            # No NA parsing: a prompt id "NA" or "null" is an id, not a missing value; numeric
            # columns are parsed (and blanks reported) below.
            df = pd.read_csv(path, dtype={"prompt_id": str, "model": str},
                             keep_default_na=False)
    except ImportError as e:
        raise DataError(f"{path}: reading Parquet needs pyarrow or fastparquet "
                        f"(pip install pyarrow), or save the table as CSV ({e})") from e
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: not a readable {path.suffix or 'CSV'} table ({e})") from e
    _check_ids(df, path, str(path))
    return df


def load_score_table(path: str | Path | pd.DataFrame, models: Sequence[str] | None = None, *,
                     params_b: dict[str, float] | None = None) -> QualityMatrix:
    """Your own scores: a long CSV/Parquet table (or a pandas DataFrame of the same layout)
    into a :class:`QualityMatrix`.

    One row per (prompt, model) with columns ``prompt_id``, ``model``, ``score`` (in [0, 1]),
    and optionally ``prompt_tokens``, ``output_tokens`` (or ``completion_tokens``), ``task``
    and ``prompt`` (text; used by the score predictor). Every prompt needs a score from every
    model. ``models`` picks and orders the models (default: in order of first appearance);
    naming a model the table lacks is an error. Other columns (e.g. ``split``) are not read:
    the matrix's ``notes`` name them (filter the rows first to use one, e.g.
    ``load_score_table(df[df["split"] == "test"])``). Errors name a DataFrame's rows 1-based.
    """
    if isinstance(path, pd.DataFrame):
        df, where, path = path.reset_index(drop=True), "score table (DataFrame)", None
        _check_ids(df, None, where)
    else:
        path = Path(path)
        df, where = _read_table_file(path), None
    where = where or str(path)
    missing_cols = [c for c in SCORE_TABLE_COLUMNS if c not in df.columns]
    if missing_cols:
        # the header is not echoed: a wrong path may name a file of secrets (KEY=value)
        raise DataError(f"{where}: missing column(s) {missing_cols}; a score table has "
                        f"{list(SCORE_TABLE_COLUMNS)} and optionally prompt_tokens, "
                        f"output_tokens, task, prompt. The file has {len(df.columns)} "
                        f"column(s), without these: check the path and that the file is a "
                        f"CSV/Parquet table with a header row")
    if df.empty:
        raise DataError(f"{where}: the score table has no rows")
    df = df.assign(prompt_id=df["prompt_id"].astype(str), model=df["model"].astype(str))
    score = pd.to_numeric(df["score"], errors="coerce")
    bad = score.isna() | ~np.isfinite(score)
    if bad.any():
        r = df[bad].iloc[0]
        raise DataError(f"{where}: score is missing or not a number in {int(bad.sum())} row(s), "
                        f"first at {_row(path, int(bad.to_numpy().argmax()))} (prompt "
                        f"{r['prompt_id']!r}, model {r['model']!r}); give every pair a score "
                        f"in [0, 1]")
    df = df.assign(score=score)
    dup = df.duplicated(["prompt_id", "model"], keep=False)
    if dup.any():
        r = df[dup].iloc[0]
        raise DataError(f"{where}: {int(dup.sum())} rows repeat a (prompt_id, model) pair, e.g. "
                        f"({r['prompt_id']!r}, {r['model']!r}); keep one score per pair "
                        f"(average repeats first if that is what you mean)")
    present = list(dict.fromkeys(df["model"]))
    if models is None:
        names = present
    else:
        names = [str(m) for m in models]
        repeated = sorted({m for m in names if names.count(m) > 1})
        if repeated:
            raise ValidationError(f"models lists {repeated} more than once; name each model once")
        unknown = [m for m in names if m not in present]
        if unknown:
            raise DataError(f"{where}: no scores for model(s) {unknown}; the table has "
                            f"{present}")
        df = df[df["model"].isin(names)]
    wide = df.pivot(index="prompt_id", columns="model", values="score")
    prompt_order = list(dict.fromkeys(df["prompt_id"]))
    wide = wide.reindex(index=prompt_order, columns=names)
    holes = wide.isna()
    if holes.to_numpy().any():
        pairs = [(p, m) for p, m in zip(*np.nonzero(holes.to_numpy()))][:5]
        example = [(prompt_order[p], names[m]) for p, m in pairs]
        raise DataError(f"{where}: {int(holes.to_numpy().sum())} (prompt, model) pair(s) have no "
                        f"row, e.g. {example}; every prompt needs a score from every model "
                        f"(drop incomplete prompts first)")
    first = df.drop_duplicates("prompt_id").set_index("prompt_id").reindex(prompt_order)
    tokens = {}
    for col, field in _OPTIONAL_INT_COLUMNS.items():
        if col not in df.columns:
            continue
        vals = pd.to_numeric(df[col], errors="coerce")
        # int64 holds the counts; a larger one (1e20) would wrap around or fail the cast
        bad = vals.isna() | ~((vals >= 0) & (vals < 2.0 ** 63)) | (vals % 1 != 0)
        if bad.any():
            at = bad.idxmax()
            v = df.at[at, col]
            v = v.item() if isinstance(v, np.generic) else v
            raise DataError(f"{where}: {col} must be a whole number from 0 to {_INT64_MAX} "
                            f"(a token count) in every row; {_row(path, at)} (prompt "
                            f"{df.at[at, 'prompt_id']!r}, model {df.at[at, 'model']!r}) has "
                            f"{v!r}" + (f", and {int(bad.sum()) - 1} more row(s)"
                                        if bad.sum() > 1 else ""))
        t = df.assign(**{col: vals.astype(np.int64)}).pivot(
            index="prompt_id", columns="model", values=col).reindex(index=prompt_order,
                                                                    columns=names)
        tokens[field] = t.to_numpy(dtype=np.int64)
    unused = [c for c in df.columns if c not in _KNOWN_COLUMNS]
    return QualityMatrix(
        source=(where,), model_names=tuple(names), prompt_ids=tuple(prompt_order),
        tasks=tuple(first["task"].astype(str)) if "task" in first else ("",) * len(prompt_order),
        prompts=tuple(first["prompt"].astype(str)) if "prompt" in first
        else tuple(prompt_order),
        scores=wide.to_numpy(dtype=float), prompt_tokens=tokens.get("prompt_tokens"),
        completion_tokens=tokens.get("completion_tokens"), params_b=params_b,
        notes=(f"scores read from {where if path is None else path.name} (user-provided; "
               f"{len(prompt_order)} prompts x "
               f"{len(names)} models)",)
        + ((f"columns not used: {unused} (a score table reads {list(_KNOWN_COLUMNS)})",)
           if unused else ()))
