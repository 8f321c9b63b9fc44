"""A solved plan, read back from ``routerwise solve ... --json PLAN.json``, and its prompt router.

:class:`LivePlan` is the typed record of what serving a plan needs: the routed models, their
planned fractions and dual prices, the SLO, the predicted per-model latency, and where the
score table the plan was solved on lies. :meth:`LivePlan.router` builds a :class:`PlanRouter`
whose :meth:`~PlanRouter.choose` routes one prompt text the way the plan says:

1. per-model scores for the prompt: the score table's own row when the prompt's text is in
   the table (exactly the scores the plan routed on; ``source="table"``), else the kit's score
   predictor (:func:`routerwise.data.score_predictor.build_pipeline`, ridge on TF-IDF) fitted on
   the whole table, clipped and rounded as the kit's predictions are (``source="predictor"``);
2. the model ``argmax_i (s_i - alpha_i)`` with the plan's prices ``alpha``, ties split by
   :class:`routerwise.planning.online_router.OnlineRouter` toward the planned fractions.

The scores are the problem's: when the served models are tiny random test models, their
quality means nothing and the scores come from the problem's score table. What a live run
measures is latency, not quality.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, ValidationError

__all__ = ["Decision", "LivePlan", "PlanRouter", "prompt_digest"]

# where a decision's scores come from
FROM_TABLE, FROM_PREDICTOR = "table", "predictor"


def prompt_digest(text: str) -> str:
    """The hex SHA-256 of a prompt's UTF-8 text: what logs record instead of the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Decision:
    """One routing decision: the chosen model, the per-model scores it was made on
    (``predicted_scores``: from the table or the predictor, see ``source``) and the plan's
    prices it subtracted."""

    model: str
    predicted_scores: dict[str, float]
    prices: dict[str, float]
    source: str = FROM_PREDICTOR


@dataclass(frozen=True)
class LivePlan:
    """What ``solve --json`` wrote, as far as serving the plan needs it.

    ``fractions``, ``prices`` and ``predicted_latency_ms`` are per model, in ``model_names``
    order (``predicted_latency_ms[i]`` is None for a model the plan routes nothing to; the
    latencies are **modelled** by the plan's curves). ``score_table`` is the score table the
    plan was solved on (CSV/Parquet; None for the default RouteProfile instance, named by
    ``score_dataset``). ``record`` is the whole JSON object, replay included.
    """

    path: Path
    problem: str
    model_names: tuple[str, ...]
    fractions: tuple[float, ...]
    prices: tuple[float, ...]
    predicted_latency_ms: tuple[float | None, ...]
    arrival_rate_rps: float
    slo_latency_ms: float
    slo_metric: str
    slo_aggregate: str
    latency_ms: float
    problem_file: Path | None = None
    score_table: Path | None = None
    score_dataset: str | None = None
    record: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        n = len(self.model_names)
        if n == 0:
            raise ValidationError(f"{self.path}: the plan routes to no model")
        for name in ("fractions", "prices", "predicted_latency_ms"):
            if len(getattr(self, name)) != n:
                raise ValidationError(f"{self.path}: {n} models but {len(getattr(self, name))} "
                                      f"{name}")
        if not all(math.isfinite(a) for a in self.prices):
            raise ValidationError(f"{self.path}: the plan's prices must be finite, got "
                                  f"{list(self.prices)}")
        if (self.score_table is None) == (self.score_dataset is None):
            raise ValidationError(f"{self.path}: a plan needs exactly one score source (a score "
                                  f"table or a named dataset)")

    @property
    def planned_fractions(self) -> dict[str, float]:
        return dict(zip(self.model_names, self.fractions))

    @property
    def planned_prices(self) -> dict[str, float]:
        return dict(zip(self.model_names, self.prices))

    @classmethod
    def from_json(cls, path: str | Path) -> LivePlan:
        """Read a plan written by ``routerwise solve ... --json PATH``.

        The plan must be feasible (an infeasible one routes nothing). Plans written before
        ``solve --json`` recorded ``score_table`` are read when they name their
        ``problem_file``; a default instance (no problem file) routes on RouteProfile.
        """
        path = Path(path).expanduser()
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"no plan at {path}; write one with `routerwise solve PROBLEM.toml "
                            f"--json {path}`") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{path} is not a readable plan JSON ({e}); give the file "
                            f"`routerwise solve ... --json` wrote") from e
        if not isinstance(d, dict) or "status" not in d:
            raise DataError(f"{path} is not a plan: `routerwise solve ... --json` writes an "
                            f"object with status, models and prices")
        if d.get("infeasibility") or not d.get("models"):
            why = (d.get("infeasibility") or {}).get("message") or f"status {d.get('status')!r}"
            raise ValidationError(f"{path}: the plan is not servable ({why}); solve a feasible "
                                  f"plan first")
        models = d["models"]
        try:
            names = tuple(str(m["name"]) for m in models)
            fractions = tuple(float(m["fraction"]) for m in models)
            prices = tuple(float(m["price"]) for m in models)
            lat = tuple(None if m.get("latency_ms") is None else float(m["latency_ms"])
                        for m in models)
            slo = d["slo"]
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: a plan's models need name, fraction and price, and the "
                            f"plan an slo ({e!r} missing or malformed)") from e
        problem_file = Path(d["problem_file"]) if d.get("problem_file") else None
        score_table = dataset = None
        scores = d.get("score_table") or {}
        if scores.get("path"):
            score_table = Path(scores["path"])
        elif scores.get("dataset"):
            dataset = str(scores["dataset"])
        elif problem_file is not None:
            score_table = _score_table_of(problem_file)
        else:
            dataset = "routeprofile"
        return cls(path=path, problem=str(d.get("problem", "")), model_names=names,
                   fractions=fractions, prices=prices, predicted_latency_ms=lat,
                   arrival_rate_rps=float(d["arrival_rate_rps"]),
                   slo_latency_ms=float(slo["latency_ms"]), slo_metric=str(slo["metric"]),
                   slo_aggregate=str(slo["aggregate"]),
                   latency_ms=float(d["latency_ms"]), problem_file=problem_file,
                   score_table=score_table, score_dataset=dataset, record=d)

    def scores(self):
        """The score matrix the plan routed on (:class:`routerwise.data.scores.QualityMatrix`,
        the plan's models in its order, with prompt texts).

        For the default instance: RouteProfile's out-of-fold **predicted** scores, the matrix
        ``routerwise solve --rate R --slo S`` routes on."""
        from dataclasses import replace

        from ..data.scores import load_score_table
        if self.score_table is not None:
            if not self.score_table.is_file():
                raise DataError(f"the plan's score table {self.score_table} is missing; the "
                                f"router needs the table the plan was solved on")
            qm = load_score_table(self.score_table, models=self.model_names)
        elif self.score_dataset == "routeprofile":
            from ..data.score_predictor import cross_val_predict_scores
            from ..data.scores import load_routeprofile
            qm = load_routeprofile().select_models(self.model_names)
            qm = replace(qm, scores=np.array(cross_val_predict_scores(qm, n_folds=5,
                                                                      seed=0).predicted))
        else:
            raise DataError(f"{self.path}: unknown score dataset {self.score_dataset!r}")
        if tuple(qm.prompts) == tuple(qm.prompt_ids):
            raise DataError(f"{self.score_table}: the score table has no prompt column, so no "
                            f"prompt text to fit the score predictor on; add a 'prompt' column "
                            f"(the text of each prompt) and solve again")
        return qm

    def _source_key(self) -> tuple:
        if self.score_table is None:
            return (self.score_dataset, self.model_names)
        st = self.score_table.stat() if self.score_table.is_file() else None
        return (str(self.score_table), st and (st.st_mtime_ns, st.st_size), self.model_names)

    def router(self, *, tie_tol: float = 1e-9) -> PlanRouter:
        """A fresh :class:`PlanRouter`: fresh tie-rule counts; the score predictor is fitted on
        the plan's score table once per process (and again when the table file changes)."""
        from ..data.score_predictor import stable_scores
        from ..planning.online_router import OnlineRouter
        key = self._source_key()
        if key not in _FITTED:
            _FITTED.clear()         # one table at a time: a server serves one plan
            _FITTED[key] = _fit(self.scores())
        qm, pipe = _FITTED[key]
        # a model the plan sends nothing to (it may have no server) is never chosen
        fractions = np.array(self.fractions)
        online = OnlineRouter(self.model_names, np.where(fractions > 0, self.prices, np.inf),
                              fractions, tie_tol=tie_tol)
        table = {}
        for text, row in zip(qm.prompts, stable_scores(qm.scores)):
            table.setdefault(text, row)          # a repeated text keeps its first row
        return PlanRouter(self.model_names, dict(zip(self.model_names, self.prices)), online,
                          table, lambda text: stable_scores(pipe.predict([text]))[0])


_FITTED: dict[tuple, tuple] = {}


def _fit(qm):
    from ..data.score_predictor import build_pipeline
    try:
        pipe = build_pipeline("ridge").fit(np.array(qm.prompts, dtype=object), qm.scores)
    except ValueError as e:
        raise ValidationError(f"the score predictor could not be fitted on {qm.num_prompts} "
                              f"prompts ({e}); the table needs enough prompts to build a "
                              f"vocabulary (terms in >= 2 prompts)") from e
    return qm, pipe


def _score_table_of(problem_file: Path) -> Path:
    try:
        d = tomllib.loads(problem_file.read_text())
        table = d["scores"]["table"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as e:
        raise DataError(f"cannot find the score table of the plan's problem file {problem_file} "
                        f"({e!r}); solve again with `routerwise solve PROBLEM.toml --json`") from e
    return (problem_file.parent / table).resolve()


class PlanRouter:
    """Routes prompt texts as the plan says (see the module docstring). Stateful: the tie
    rule keeps the realized fractions near the planned ones, so use one router per stream."""

    def __init__(self, model_names, prices: Mapping[str, float], online, table, predict):
        self.model_names = tuple(model_names)
        self.prices = dict(prices)
        self.online = online
        self._table = table
        self._predict = predict

    def scores_for(self, text: str) -> tuple[np.ndarray, str]:
        row = self._table.get(text)
        if row is not None:
            return row, FROM_TABLE
        return self._predict(text), FROM_PREDICTOR

    def choose(self, prompt_text: str) -> Decision:
        if not isinstance(prompt_text, str):
            raise ValidationError(f"the router routes prompt text, got {type(prompt_text).__name__}")
        s, source = self.scores_for(prompt_text)
        i = self.online.route(s)
        return Decision(self.model_names[i],
                        {m: float(v) for m, v in zip(self.model_names, s)},
                        dict(self.prices), source)

    @property
    def realized_fractions(self) -> dict[str, float]:
        return dict(zip(self.model_names, map(float, self.online.realized_fractions)))
