"""Evaluation: trec_eval measures for one or more runs, side by side, with paired significance tests.

Measures are any string ir_measures parses (``"nDCG@10"``, ``"R@100"``, ``"AP@1000"``, ``"RR@10"``,
``"P(rel=2)@5"``) or a trec_eval name (``"ndcg_cut_10"``, ``"map"``). They are computed by trec_eval's
own code (pytrec_eval) whenever it has the measure; the others (``RR@10``, ``Judged@10`` ...) by the
ir_measures provider that has them, fed the run as ranks so that ties are broken as trec_eval breaks
them.

Choices (as trec_eval does, with ``-c``):

- a query's documents are ranked by score descending, ties by document id descending (trec_eval's
  order; :func:`inpars.datasets.ranked` and :func:`inpars.datasets.write_run` use it too);
- unjudged documents are non-relevant; grade <= 0 is non-relevant; nDCG's gain is the grade (linear);
- the query set is every query of the qrels (optionally restricted with ``query_ids``); a query that a
  run does not answer scores 0 on every measure (``trec_eval -c``), and the mean is over that whole set;
  run queries without judgements are ignored;
- ``num_q``, ``num_ret``, ``num_rel``, ``num_rel_ret`` are totals, as trec_eval prints them; a hit whose
  document id equals the query id is kept unless ``ignore_identical_ids`` (BEIR's rule, which drops it).

Significance: against a baseline run, per measure, a two-sided paired t-test (``scipy.stats.ttest_rel``)
and a two-sided paired randomisation test (``scipy.stats.permutation_test`` with
``permutation_type="samples"``, i.e. random sign flips of the per-query differences; exact when
``2**n_queries <= permutations``, seeded otherwise). No correction for multiple comparisons is applied.

>>> qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}}
>>> runs = {"bm25": {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d2": 3.0, "d3": 1.0}},
...         "other": {"q1": {"d1": 5.0}}}
>>> result = evaluate_runs(qrels, runs, measures=["RR", "P@1"], baseline="bm25")
>>> result.aggregate["bm25"]          # RR: (1 + 1/2) / 2; P@1: (1 + 0) / 2
{'RR': 0.75, 'P@1': 0.5}
>>> result.per_query["other"]["RR"]  # q2 is missing from 'other': 0
{'q1': 1.0, 'q2': 0.0}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.datasets import (
    Dataset,
    as_dataset,
    evaluation_access,
    ranked,
    read_qrels,
    read_run_dict,
    run_to_dict,
)
from inpars.errors import ConfigError
from inpars.evaluation_rules import aggregate as aggregate_values
from inpars.evaluation_rules import (  # noqa: F401  (parse_measures, split_measures: re-exported)
    drop_identical_ids,
    fill_counts,
    parse_measures,
    split_measures,
    warn_identical_ids,
)
from inpars.io import atomic_write, write_json
from inpars.records import Qrel, ScoredDoc

log = logging.getLogger(__name__)

DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@10", "R@100", "AP@1000", "RR@10")
TESTS: tuple[str, ...] = ("ttest", "permutation")
TEST_LABELS = {"ttest": "t-test p", "permutation": "perm. p"}

QrelsLike = Mapping[str, Mapping[str, int]] | Iterable[Qrel] | str | Path
RunLike = Mapping[str, Mapping[str, float]] | Iterable[ScoredDoc] | str | Path


# -------------------------------------------------------------------------------------------- inputs


def as_qrels(qrels: QrelsLike) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: grade}}`` from a dict, an iterable of :class:`Qrel` or a qrels file."""
    if isinstance(qrels, (str, Path)):
        qrels = read_qrels(qrels)
    if isinstance(qrels, Mapping):
        return {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    out: dict[str, dict[str, int]] = {}
    for q in qrels:
        out.setdefault(q.query_id, {})[q.doc_id] = int(q.relevance)
    return out


def as_run(run: RunLike) -> dict[str, dict[str, float]]:
    """``{query_id: {doc_id: score}}`` from a dict, an iterable of :class:`ScoredDoc` or a TREC run file."""
    if isinstance(run, (str, Path)):
        return read_run_dict(run)
    if isinstance(run, Mapping):
        return {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()}
    return run_to_dict(run)


# ----------------------------------------------------------------------------------------- measuring


def per_query_values(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    measures: Sequence[Any],
    query_ids: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """``{measure: {query_id: value}}`` over ``query_ids`` (default: the qrels' queries); missing -> 0."""
    import ir_measures

    qids = list(query_ids) if query_ids is not None else list(qrels)
    values: dict[str, dict[str, float]] = {str(m): dict.fromkeys(qids, 0.0) for m in measures}
    wanted = set(qids)
    qrels_d = {q: dict(docs) for q, docs in qrels.items() if q in wanted}
    run_d = {q: dict(docs) for q, docs in run.items() if q in wanted and docs}
    if not qrels_d or not run_d:
        return values
    trec = ir_measures.providers.registry["pytrec_eval"]
    native = [m for m in measures if trec.supports(m)]
    other = [m for m in measures if not trec.supports(m)]
    if native:
        for metric in trec.evaluator(native, qrels_d).iter_calc(run_d):
            values[str(metric.measure)][metric.query_id] = float(metric.value)
    if other:
        # Scores replaced by ranks in trec_eval's order, so any provider breaks ties as trec_eval does.
        by_rank = {q: {d: float(len(docs) - i) for i, (d, _) in enumerate(ranked(docs))} for q, docs in run_d.items()}
        for metric in ir_measures.iter_calc(other, qrels_d, by_rank):
            values[str(metric.measure)][metric.query_id] = float(metric.value)
    return values


def ttest_pvalue(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided paired t-test p-value of ``x`` against ``y`` (1.0 when every difference is 0)."""
    import numpy as np
    from scipy import stats

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2 or np.all(a == b):
        return 1.0
    d = a - b
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):  # one constant difference: no spread, t is infinite
        return 0.0
    p = float(stats.ttest_rel(a, b).pvalue)
    return 1.0 if math.isnan(p) else p


def permutation_pvalue(x: Sequence[float], y: Sequence[float], permutations: int = 10000, seed: int = 0) -> float:
    """Two-sided paired randomisation test of the mean difference (random sign flips, seeded).

    Exact (all ``2**n`` sign flips) when ``2**n <= permutations``; otherwise ``permutations`` random flips
    and scipy's +1 correction, so the p-value is never 0.
    """
    import numpy as np
    from scipy import stats

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 1 or np.all(a == b):
        return 1.0

    def mean_diff(u: Any, v: Any, axis: int) -> Any:
        return np.mean(u - v, axis=axis)

    res = stats.permutation_test(
        (a, b),
        mean_diff,
        permutation_type="samples",
        vectorized=True,
        n_resamples=int(permutations),
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(min(1.0, res.pvalue))


# -------------------------------------------------------------------------------------------- result


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


@dataclass
class EvaluationResult:
    """Aggregates, per-query values and p-values of runs evaluated on one query set.

    ``aggregate[run][measure]`` is the mean over ``query_ids``; ``per_query[run][measure][query_id]`` the
    value of each query; ``pvalues[run][measure][test]`` the p-value of ``run`` against ``baseline``.
    """

    measures: list[str]
    query_ids: list[str]
    runs: list[str]
    aggregate: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]]
    baseline: str | None = None
    tests: list[str] = field(default_factory=list)
    pvalues: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    permutations: int = 10000
    seed: int = 0
    alpha: float = 0.05
    unanswered: dict[str, int] = field(default_factory=dict)

    def delta(self, run: str, measure: str) -> float | None:
        """Mean difference of ``run`` minus the baseline on ``measure`` (None without baseline)."""
        if self.baseline is None:
            return None
        return self.aggregate[run][measure] - self.aggregate[self.baseline][measure]

    def significant(self, run: str, measure: str) -> bool:
        """True when every test run gives p < alpha."""
        ps = self.pvalues.get(run, {}).get(measure, {})
        return bool(ps) and all(p < self.alpha for p in ps.values())

    def _main_rows(self, marker: str) -> list[list[str]]:
        rows = []
        for run in self.runs:
            cells = [run]
            for m in self.measures:
                cell = f"{self.aggregate[run][m]:.4f}"
                cells.append(cell + (marker if self.significant(run, m) else ""))
            rows.append(cells)
        return rows

    def _test_rows(self) -> list[list[str]]:
        rows = []
        for run in self.runs:
            if run == self.baseline or run not in self.pvalues:
                continue
            for m in self.measures:
                delta = self.delta(run, m) or 0.0
                rows.append(
                    [run, m, f"{self.aggregate[run][m]:.4f}", f"{delta:+.4f}"]
                    + [_fmt_p(self.pvalues[run][m].get(t)) for t in self.tests]
                )
        return rows

    def _test_header(self) -> list[str]:
        return ["run", "measure", "mean", f"Δ vs {self.baseline}"] + [TEST_LABELS[t] for t in self.tests]

    def _footer(self) -> str:
        text = f"{len(self.query_ids)} queries; unanswered queries count 0 (trec_eval -c)."
        missing = {r: n for r, n in self.unanswered.items() if n}
        if missing:
            text += " Unanswered: " + ", ".join(f"{r} {n}" for r, n in missing.items()) + "."
        if self.baseline is not None and self.tests:
            text += (
                f" Paired two-sided tests against '{self.baseline}'"
                + (f" ({self.permutations} permutations, seed {self.seed})" if "permutation" in self.tests else "")
                + f"; * = p < {self.alpha} in every test."
            )
        return text

    def to_text(self) -> str:
        """A plain-text table (runs by measures), then the tests against the baseline."""
        parts = [_text_table(["run", *self.measures], self._main_rows("*"))]
        if self.baseline is not None and self.tests and len(self.runs) > 1:
            parts.append(_text_table(self._test_header(), self._test_rows()))
        parts.append(self._footer())
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        """The same tables in Markdown."""
        parts = [_md_table(["run", *self.measures], self._main_rows("\\*"))]
        if self.baseline is not None and self.tests and len(self.runs) > 1:
            parts.append(_md_table(self._test_header(), self._test_rows()))
        parts.append(self._footer().replace("* =", "\\* ="))
        return "\n\n".join(parts) + "\n"

    def to_json(self) -> dict[str, Any]:
        """Everything, per-query values included (for plots of per-query differences)."""
        return {
            "measures": self.measures,
            "runs": self.runs,
            "baseline": self.baseline,
            "tests": self.tests,
            "permutations": self.permutations,
            "seed": self.seed,
            "alpha": self.alpha,
            "missing_queries": "zero",
            "n_queries": len(self.query_ids),
            "query_ids": self.query_ids,
            "unanswered": self.unanswered,
            "aggregate": self.aggregate,
            "pvalues": self.pvalues,
            "per_query": self.per_query,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> EvaluationResult:
        """Rebuild a result from :meth:`to_json`'s output."""
        return cls(
            measures=list(obj["measures"]),
            query_ids=list(obj["query_ids"]),
            runs=list(obj["runs"]),
            aggregate=dict(obj["aggregate"]),
            per_query=dict(obj["per_query"]),
            baseline=obj.get("baseline"),
            tests=list(obj.get("tests") or []),
            pvalues=dict(obj.get("pvalues") or {}),
            permutations=int(obj.get("permutations", 10000)),
            seed=int(obj.get("seed", 0)),
            alpha=float(obj.get("alpha", 0.05)),
            unanswered=dict(obj.get("unanswered") or {}),
        )

    def save(self, json_path: str | Path | None = None, markdown_path: str | Path | None = None) -> None:
        """Write the JSON and/or the Markdown report (atomically)."""
        if json_path is not None:
            write_json(json_path, self.to_json())
        if markdown_path is not None:
            with atomic_write(markdown_path) as f:
                f.write(self.to_markdown())


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = 2 if header[:2] == ["run", "measure"] else 1

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    sep = ["---"] + ["---:"] * (len(header) - 1)
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, sep, *rows])


# ------------------------------------------------------------------------------------------- evaluate


def _judged_query_ids(qrels_d: Mapping[str, Mapping[str, int]], query_ids: Iterable[str] | None) -> list[str]:
    """The query set: ``query_ids`` (first occurrences) that have judgements, else every judged query."""
    if query_ids is None:
        return list(qrels_d)
    wanted = list(dict.fromkeys(query_ids))
    unjudged = [q for q in wanted if q not in qrels_d]
    if unjudged:
        log.warning("%d of the requested queries have no judgements and are left out", len(unjudged))
    return [q for q in wanted if q in qrels_d]


def _pvalues(
    per_query: Mapping[str, Mapping[str, Mapping[str, float]]],
    baseline: str,
    measures: Sequence[str],
    qids: Sequence[str],
    tests: Sequence[str],
    permutations: int,
    seed: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{run: {measure: {test: p}}}`` of every run but ``baseline`` against it, on the queries ``qids``."""
    pvalues: dict[str, dict[str, dict[str, float]]] = {}
    for name in per_query:
        if name == baseline:
            continue
        pvalues[name] = {}
        for m in measures:
            x = [per_query[name][m][q] for q in qids]
            y = [per_query[baseline][m][q] for q in qids]
            ps: dict[str, float] = {}
            if "ttest" in tests:
                ps["ttest"] = ttest_pvalue(x, y)
            if "permutation" in tests:
                ps["permutation"] = permutation_pvalue(x, y, permutations, seed)
            pvalues[name][m] = ps
    return pvalues


def evaluate_runs(
    qrels: QrelsLike,
    runs: Mapping[str, RunLike],
    *,
    measures: str | Sequence[str] = DEFAULT_MEASURES,
    baseline: str | None = None,
    tests: Sequence[str] = TESTS,
    permutations: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
    query_ids: Iterable[str] | None = None,
    ignore_identical_ids: bool = False,
) -> EvaluationResult:
    """Evaluate named runs on the same qrels; with ``baseline``, test every other run against it.

    ``qrels``: ``{query_id: {doc_id: grade}}``, Qrel records or a qrels file; ``runs``: name -> run
    dict, ScoredDoc records or a run file (TREC or MS MARCO, plain or .gz). ``query_ids`` restricts the
    query set (default: every judged query). ``tests``: any of ``"ttest"``, ``"permutation"``.
    ``ignore_identical_ids``: drop hits whose document id is the query id (:mod:`inpars.evaluation_rules`).
    """
    parsed = parse_measures(measures)
    names = [str(m) for m in parsed]
    bad = [t for t in tests if t not in TESTS]
    if bad:
        raise ConfigError(f"unknown significance test(s) {bad}; choose from {list(TESTS)}")
    if not runs:
        raise ConfigError("no run to evaluate")
    if baseline is not None and baseline not in runs:
        raise ConfigError(f"baseline '{baseline}' is not among the runs ({', '.join(runs)})")
    qrels_d = as_qrels(qrels)
    qids = _judged_query_ids(qrels_d, query_ids)
    if not qids:
        raise ConfigError("no judged query to evaluate on")

    per_query: dict[str, dict[str, dict[str, float]]] = {}
    aggregate: dict[str, dict[str, float]] = {}
    unanswered: dict[str, int] = {}
    for name, run in runs.items():
        run_d = as_run(run)
        if ignore_identical_ids:
            run_d, dropped = drop_identical_ids(run_d)
            log.info("run '%s': %d hits whose document id is the query id dropped (BEIR's rule)", name, dropped)
        else:
            warn_identical_ids(name, run_d, qids)
        unanswered[name] = sum(1 for q in qids if not run_d.get(q))
        extra = sum(1 for q in run_d if q not in qrels_d)
        if extra:
            log.info("run '%s': %d queries without judgements ignored", name, extra)
        if unanswered[name]:
            log.warning("run '%s' answers no document for %d of %d queries: they count 0", name, unanswered[name], len(qids))
        per_query[name] = per_query_values(qrels_d, run_d, parsed, qids)
        fill_counts(per_query[name], parsed, qrels_d, qids)
        aggregate[name] = aggregate_values(per_query[name], parsed, len(qids))

    pvalues: dict[str, dict[str, dict[str, float]]] = {}
    if baseline is not None:
        pvalues = _pvalues(per_query, baseline, names, qids, tests, permutations, seed)
    return EvaluationResult(
        measures=names,
        query_ids=qids,
        runs=list(runs),
        aggregate=aggregate,
        per_query=per_query,
        baseline=baseline,
        tests=list(tests) if baseline is not None else [],
        pvalues=pvalues,
        permutations=int(permutations),
        seed=int(seed),
        alpha=alpha,
        unanswered=unanswered,
    )


def evaluate_dataset(
    dataset: Dataset | str | Path,
    split: str,
    runs: Mapping[str, RunLike],
    *,
    measures: str | Sequence[str] = DEFAULT_MEASURES,
    baseline: str | None = None,
    tests: Sequence[str] = TESTS,
    permutations: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
    query_ids: Iterable[str] | None = None,
    ignore_identical_ids: bool = False,
) -> EvaluationResult:
    """:func:`evaluate_runs` on a dataset split's judgements (read inside :func:`evaluation_access`).

    >>> result = evaluate_dataset("scifact", "test", {"bm25": "runs/bm25.trec"}, measures="nDCG@10 R@100")  # doctest: +SKIP
    >>> print(result.to_text())                                                                             # doctest: +SKIP
    """
    ds = as_dataset(dataset)
    with evaluation_access():
        qrels = ds.qrels(split)
    return evaluate_runs(
        qrels, runs, measures=measures, baseline=baseline, tests=tests, permutations=permutations, seed=seed,
        alpha=alpha, query_ids=query_ids, ignore_identical_ids=ignore_identical_ids,
    )
