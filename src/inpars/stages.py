"""The stage table of ``inpars run``: what each stage reads, writes and decides its identity from.

Each :class:`Stage` declares

- ``section``: the config section it is driven by (its parameter object);
- ``inputs``: named outputs of earlier stages (``(stage, key)`` pairs from :data:`inpars.layout.OUTPUTS`)
  or extra files resolved from the config (``extra_inputs``);
- ``identity``: what, beyond the section's :func:`~inpars.fingerprint.identity`, decides its result
  (seed, query ids, ...);
- ``run(ctx, folder)``: the library call, returning a JSON-able summary.

:func:`inpars.pipeline.run_pipeline` walks this table once; caching, resuming and ``--from``/``--until``/
``--force`` are handled there, not here. A new stage is one function and one row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.config import (
    EvaluateConfig,
    FilterConfig,
    GenerateConfig,
    NegativesConfig,
    PipelineConfig,
    RerankConfig,
    RetrieveConfig,
    TrainConfig,
)
from inpars.datasets import Dataset, read_run_dict
from inpars.evaluation import evaluate_dataset
from inpars.families import detect_model_type
from inpars.filter import filter_queries, load_records
from inpars.fingerprint import identity
from inpars.fusion import TuneSet
from inpars.generate import generate_queries
from inpars.io import atomic_write, write_json
from inpars.layout import OUTPUTS, output_path
from inpars.manifest import Split, StageResult
from inpars.models import resolve_model
from inpars.negatives import mine_negatives
from inpars.pseudo_dev import PSEUDO_DEV, held_docs, load_pseudo_dev, write_pseudo_dev
from inpars.rerank import load_scorer
from inpars.reranking import RerankFiles, labelled_tune_set, rerank_and_fuse
from inpars.retrieval import get_index
from inpars.retrieval import retrieve as retrieve_run
from inpars.summary import as_dict
from inpars.training import saved_model_path, train_reranker

log = logging.getLogger(__name__)

#: Name of a collection's own queries when no split judges them (file names of the ranked runs).
UNJUDGED = "queries"


def label_splits(cfg: PipelineConfig) -> list[str]:
    """The judgement splits a run reads outside evaluation: only those its config names (opt-in)."""
    named = {cfg.dataset.train_split, cfg.rerank.tune_split if cfg.rerank.interpolate else None}
    return sorted(s for s in named if s)


@dataclass
class Context:
    """What every stage of one run shares: the config, the dataset, the run folder, the query ids."""

    cfg: PipelineConfig
    ds: Dataset
    run_dir: Path
    eval_ids: list[str]
    tune_ids: list[str]
    #: the judged split evaluated (``dataset.eval_split``, or ``test`` where judged); None: no evaluation,
    #: and ``eval_ids`` are the collection's own queries (``queries.jsonl``), ranked but never scored
    eval_split: str | None = "test"
    results: dict[str, StageResult] = field(default_factory=dict)

    @property
    def judged(self) -> bool:
        """Whether the ranked queries have judgements, so that the evaluate stage runs."""
        return self.eval_split is not None

    @property
    def query_set(self) -> str:
        """The name the ranked queries' files carry: the judged split, or ``queries`` (the collection's own
        queries, without judgements)."""
        return self.eval_split or UNJUDGED

    def eval_queries(self, ids: list[str]) -> dict[str, str]:
        """The texts of the ranked queries ``ids`` (ids only are read from a split's judgements)."""
        texts = self.ds.queries(self.eval_split) if self.eval_split else self.ds.queries()
        return {q: texts[q] for q in ids if q in texts}

    @property
    def threads(self) -> int | None:
        """CPU threads (runtime only: never changes a result)."""
        return self.cfg.threads

    @property
    def dataset_name(self) -> str:
        """The dataset as the config names it (recorded in ``ranker.json``)."""
        return str(self.cfg.dataset.name)

    @property
    def interpolate(self) -> bool:
        """Whether the run writes the fusion of the reranker and the first stage."""
        return self.cfg.rerank.interpolate

    @property
    def first_stage(self) -> Path:
        """The run the rerank stage reranks: ``rerank.first_stage``, else this run's BM25 run."""
        given = self.cfg.rerank.first_stage
        return Path(given) if given else self.out("retrieve", "eval_run")

    @property
    def compares_start(self) -> bool:
        """Whether the rerank stage compares the trained model with its start checkpoint (label-free
        training run, ``rerank.select_start``)."""
        return self.pseudo_dev and self.training and self.cfg.rerank.select_start

    @property
    def start_model(self) -> str:
        """The checkpoint training starts from (``train.model``, as the config names it)."""
        return self.cfg.train.model

    @property
    def tune_split(self) -> str:
        """The split the fusion weight is tuned on: a labelled split named by the config, else the
        pseudo-dev set of held-out synthetic queries."""
        return self.cfg.rerank.tune_split or PSEUDO_DEV

    @property
    def label_splits(self) -> list[str]:
        return label_splits(self.cfg)

    @property
    def pseudo_dev(self) -> bool:
        """Whether the fusion weight is tuned on held-out synthetic queries (the label-free default)."""
        return self.cfg.rerank.interpolate and not self.cfg.rerank.tune_split

    @property
    def index_dir(self) -> Path:
        """The BM25 index shared by retrieve, filter and negatives (built once per run folder)."""
        return self.run_dir / "bm25-index"

    @property
    def training(self) -> bool:
        """Whether this run trains its reranker (no ``rerank.model`` given)."""
        return self.cfg.rerank.model is None

    @property
    def synthesizing(self) -> bool:
        """Whether this run writes synthetic queries: to train on, or to tune the fusion on."""
        return self.training or self.pseudo_dev

    def out(self, stage: str, key: str) -> Path:
        """The path of a declared output of ``stage`` in this run."""
        return output_path(self.run_dir, stage, key, eval_split=self.query_set, tune_split=self.tune_split,
                           depth=self.cfg.rerank.depth)

    def model(self) -> tuple[str, str | None]:
        """The reranker checkpoint and its declared type: the trained one, or ``rerank.model``."""
        if self.training:
            return str(saved_model_path(self.out("train", "model").parent)), self.cfg.train.model_type
        return str(self.cfg.rerank.model), self.cfg.rerank.model_type


@dataclass(frozen=True)
class Stage:
    name: str
    #: the config section driving the stage: the key of ``params`` its growable settings are found under
    section: str | None
    #: the stage's library call: ``run(ctx, folder, **params(ctx))``; it reads everything that decides its
    #: result from ``params`` (the context gives the dataset, the paths and runtime settings only)
    run: Callable[..., Any]
    inputs: tuple[tuple[str, str], ...] = ()
    #: the parameters ``run`` receives (config sections as their models, and plain values): the stage's
    #: config identity is theirs (:meth:`config_identity`), so what decides a result is what is hashed
    params: Callable[[Context], Mapping[str, Any]] = lambda ctx: {}
    extra_inputs: Callable[[Context], Mapping[str, Path]] = lambda ctx: {}
    enabled: Callable[[Context], bool] = lambda ctx: True
    #: why a disabled stage does not run, said once to the user (None: nothing worth saying)
    skipped: Callable[[Context], str | None] = lambda ctx: None
    #: settings of the section whose increase extends the finished outputs (see run_stage's ``grow``),
    #: when ``growable(ctx)`` says the current config allows it (by default it does; it also gates ``reuses``)
    grows: tuple[str, ...] = ()
    #: settings of the section whose change (any value) still lets the stage start from a copy of its
    #: finished outputs, which the stage reuses as far as they hold (train: ``average_start`` is applied
    #: after the last step, so the finished run's last checkpoint gives the new average without training)
    reuses: tuple[str, ...] = ()
    growable: Callable[[Context], bool] = lambda ctx: True

    def grow(self, ctx: Context) -> Split | None:
        """The ``grow`` of :func:`inpars.manifest.run_stage` (:meth:`split_growth`), or ``None`` when nothing
        may grow."""
        if not (self.grows or self.reuses) or self.section is None or not self.growable(ctx):
            return None
        return self.split_growth

    def split_growth(self, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A config identity of this stage (as its manifest records it) without its growable and reusable
        settings, and the growable ones' values. Raises ``KeyError`` when a growable setting is missing."""
        assert self.section is not None
        section = dict(config[self.section])
        sizes = {name: section.pop(name) for name in self.grows}
        for name in self.reuses:  # an added_field at its default is absent from the identity
            section.pop(name, None)
        return {**config, self.section: section}, sizes

    def config_identity(self, ctx: Context) -> dict[str, Any]:
        """The identity (:func:`~inpars.fingerprint.identity`: runtime-only fields left out) of the parameters
        the stage receives."""
        return dict(identity(dict(self.params(ctx))))

    def call(self, ctx: Context, folder: Path) -> Any:
        """Run the stage into ``folder`` with its parameters."""
        return self.run(ctx, folder, **self.params(ctx))

    def input_paths(self, ctx: Context) -> dict[str, Path]:
        paths = {key: ctx.out(stage, key) for stage, key in self.inputs}
        paths.update(self.extra_inputs(ctx))
        return paths

    @property
    def outputs(self) -> dict[str, str]:
        return OUTPUTS[self.name]


# --- the stages ---------------------------------------------------------------------------------------
# Each function receives what decides its result as keyword parameters (the ``params`` of its row); it reads
# no setting from ``ctx.cfg`` (a test checks), only the dataset, the paths and runtime settings of ``ctx``.


def _retrieve(ctx: Context, folder: Path, *, retrieve: RetrieveConfig, eval: list[str], tune: list[str]) -> dict[str, Any]:
    """BM25 runs of the ranked queries and of a labelled tuning split; the index is built in any case (the
    run's ranker searches it)."""
    out: dict[str, Any] = {}
    t = time.perf_counter()
    index = get_index(ctx.ds, ctx.index_dir, **retrieve.index_params())
    out["index"] = {"documents": len(index), "seconds": round(time.perf_counter() - t, 2)}
    tune_texts = ctx.ds.queries(ctx.tune_split) if tune else {}
    for name, queries, key in ((ctx.query_set, ctx.eval_queries(eval), "eval_run"),
                               (ctx.tune_split, {q: tune_texts[q] for q in tune if q in tune_texts}, "tune_run")):
        if not queries:
            continue
        t = time.perf_counter()
        retrieve_run(ctx.ds, retrieve, queries=queries, index_dir=ctx.index_dir, out=ctx.out("retrieve", key))
        out[name] = {"queries": len(queries), "seconds": round(time.perf_counter() - t, 2)}
    return out


def _generate(ctx: Context, folder: Path, *, generate: GenerateConfig, seed: int, train_split: str | None) -> dict[str, Any]:
    return as_dict(generate_queries(ctx.ds, ctx.out("generate", "queries"), generate, seed=seed,
                                    train_split=train_split))


def _filter(ctx: Context, folder: Path, *, filter: FilterConfig, bm25: dict[str, Any], seed: int) -> dict[str, Any]:
    return as_dict(filter_queries(ctx.out("generate", "queries"), ctx.out("filter", "filtered"), filter, dataset=ctx.ds,
                                  seed=seed, index_dir=ctx.index_dir, bm25=bm25))


def _pseudo_dev(ctx: Context, folder: Path, *, retrieve: RetrieveConfig, seed: int, checks: dict[str, Any],
                documents: int, training: bool = True) -> dict[str, Any]:
    """The label-free tuning set (:mod:`inpars.pseudo_dev`). Its documents are drawn from everything
    generated, and their queries pass the always-on checks only (not the filter steps): the set is the same
    whatever the filter, so the settings it compares are compared on the same queries. A run that trains
    nothing (a given rerank.model: the quick recipe) holds out every document it wrote queries for."""
    return write_pseudo_dev(
        ctx.out("generate", "queries"), ctx.ds, {k: ctx.out("pseudo-dev", k) for k in OUTPUTS["pseudo-dev"]},
        n_docs=documents, share=0.25 if training else 1.0, seed=seed, checks=checks,
        first_stage=retrieve, index_dir=ctx.index_dir,
    )


def _negatives(ctx: Context, folder: Path, *, negatives: NegativesConfig, bm25: dict[str, Any], seed: int,
               qrels_split: str | None) -> dict[str, Any]:
    """Training examples from the filtered queries, less those of the pseudo-dev documents."""
    records = load_records(ctx.out("filter", "filtered"), ctx.ds)
    held = held_docs(ctx.out("pseudo-dev", "docs")) if ctx.pseudo_dev else set()
    train = [r for r in records if r.doc_id not in held]
    return as_dict(mine_negatives(train, ctx.out("negatives", "train"), negatives, dataset=ctx.ds, seed=seed,
                                  index_dir=ctx.index_dir, bm25=bm25, qrels_split=qrels_split))


def _train(ctx: Context, folder: Path, *, train: TrainConfig, seed: int) -> dict[str, Any]:
    return as_dict(train_reranker(ctx.out("negatives", "train"), folder, train, seed=seed, threads=ctx.threads))


def _rerank(ctx: Context, folder: Path, *, rerank: RerankConfig, model_type: str | None, eval: list[str], seed: int,
            retrieve: RetrieveConfig, tune: str, start: str | None = None) -> dict[str, Any]:
    """Decide on the tuning set ``tune`` which model reranks and at what fusion weight, rerank the ranked
    queries with that (:func:`inpars.reranking.rerank_and_fuse`, the path ``inpars rerank`` takes too), and
    write ``ranker.json`` (what ``inpars search`` applies to new queries). ``start``: the start checkpoint of
    a label-free training run, compared with the trained model where it reranks as that does."""
    rc = rerank
    files = RerankFiles(top=ctx.out("rerank", "top"), reranked=ctx.out("rerank", "reranked"),
                        interpolated=ctx.out("rerank", "interpolated"), record=ctx.out("rerank", "fusion"),
                        scores=folder)
    queries = ctx.eval_queries(eval)
    start = _comparable_start(start, model_type)
    done = rerank_and_fuse(ctx.ds, ctx.first_stage if queries else {}, queries, _model_loaders(ctx, rc, model_type, start),
                           depth=rc.depth, tune=_tune_set(ctx, rc, seed), where=tune, supervised=not ctx.pseudo_dev,
                           alpha=rc.alpha, alphas=rc.alphas, min_queries=rc.min_decision_queries, max_p=rc.decision_p,
                           seed=seed, files=files)
    out: dict[str, Any] = {}
    if done.record is not None:
        out.update(alpha=done.alpha, alpha_table=done.record["table"], model=done.model,
                   decision=done.record["reason"])
    if queries:
        out.update(pairs=done.pairs, rerank_seconds=round(done.seconds, 2),
                   pairs_per_second=round(done.pairs / max(done.seconds, 1e-9), 2))
    write_json(ctx.out("rerank", "ranker"), _ranker_spec(ctx, done.model, done.alpha, rc, model_type, retrieve))
    return out


def _model_loaders(ctx: Context, rc: RerankConfig, model_type: str | None, start: str | None) -> dict[str, Any]:
    """The candidate rerankers, by name: ``trained`` (the run's model, or ``rerank.model``: ``given``) and
    ``start`` (the comparable start checkpoint, when there is one)."""
    kw: dict[str, Any] = dict(batch_size=rc.batch_size, max_length=rc.max_length, engine=rc.engine,
                              threads=ctx.threads, executor=rc.executor, executor_options=rc.executor_options)
    model = ctx.model()[0]
    loaders: dict[str, Any] = {"trained" if ctx.training else "given": lambda: load_scorer(model, model_type, **kw)}
    if start is not None:
        loaders["start"] = lambda: load_scorer(start, model_type, **kw)
    return loaders


def _tune_set(ctx: Context, rc: RerankConfig, seed: int) -> TuneSet | None:
    """The set the decision is made on: the pseudo-dev set (label-free), a labelled split's queries
    (``rerank.tune_split``), or None without fusion."""
    if ctx.pseudo_dev:
        return load_pseudo_dev(ctx.ds, ctx.out("pseudo-dev", "queries"), ctx.out("pseudo-dev", "run"))
    if not rc.interpolate:
        return None
    return labelled_tune_set(ctx.ds, ctx.tune_split, read_run_dict(ctx.out("retrieve", "tune_run")), rc.tune_queries,
                             seed)


def _ranker_spec(ctx: Context, chosen: str, alpha: float | None, rc: RerankConfig, model_type: str | None,
                 retrieve: RetrieveConfig) -> dict[str, Any]:
    """``ranker.json``: the first stage, the chosen model and the fusion weight, with paths relative to the
    run folder where they lie inside it (the folder can be moved)."""
    model = ctx.model()[0]
    if chosen == "start":
        model = ctx.start_model
    elif Path(model).exists():
        path = Path(model).resolve()
        root = ctx.run_dir.resolve()
        model = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return {
        "format": 1, "dataset": ctx.dataset_name,
        "first_stage": {"index": ctx.index_dir.name, **retrieve.model_dump()},
        "model": model, "model_choice": chosen, "model_type": model_type, "max_length": rc.max_length,
        "engine": rc.engine, "depth": rc.depth, "alpha": alpha,
    }


def _comparable_start(start: str | None, model_type: str | None) -> str | None:
    """The start checkpoint ``start`` of a label-free training run, resolved, when it can rerank as the
    trained model does (same family: e.g. all-MiniLM-L6-v2 for a bi-encoder, not for a cross-encoder,
    whose head it lacks)."""
    if start is None:
        return None
    path = resolve_model(start)
    try:
        same = detect_model_type(path) == model_type
    except (OSError, ValueError):  # a start the transformers config reader cannot read: no comparison
        return None
    return path if same else None


def _evaluated_runs(ctx: Context) -> dict[str, Path]:
    runs = {"bm25": ctx.out("retrieve", "eval_run"), "reranked": ctx.out("rerank", "reranked")}
    if ctx.interpolate:
        runs["interpolated"] = ctx.out("rerank", "interpolated")
    return runs


def _evaluate(ctx: Context, folder: Path, *, evaluate: EvaluateConfig, split: str | None, eval: list[str],
              seed: int) -> dict[str, Any]:
    """The only stage that reads the evaluation split's judgements."""
    assert split is not None  # enabled only when judged
    res = evaluate_dataset(ctx.ds, split, {k: read_run_dict(v) for k, v in _evaluated_runs(ctx).items()},
                           query_ids=eval, seed=seed, **evaluate.model_dump())
    write_json(ctx.out("evaluate", "metrics"), res.to_json())
    with atomic_write(ctx.out("evaluate", "markdown")) as f:
        f.write(res.to_markdown() + "\n")
    with atomic_write(ctx.out("evaluate", "text")) as f:
        f.write(res.to_text() + "\n")
    return {"aggregate": res.to_json().get("aggregate", {})}


def _model_input(ctx: Context) -> dict[str, Path]:
    model, _ = ctx.model()
    return {"model": Path(model)} if Path(model).exists() else {}


def _rerank_inputs(ctx: Context) -> dict[str, Path]:
    paths = {**_model_input(ctx)}
    if ctx.eval_ids:
        paths["first_stage"] = ctx.first_stage
    if ctx.pseudo_dev:
        paths.update(pseudo_dev=ctx.out("pseudo-dev", "queries"), pseudo_dev_run=ctx.out("pseudo-dev", "run"))
    elif ctx.interpolate:
        paths["tune_first_stage"] = ctx.out("retrieve", "tune_run")
    return paths


def _training(ctx: Context) -> bool:
    return ctx.training


def _synthesizing(ctx: Context) -> bool:
    return ctx.synthesizing


def _checks(cfg: PipelineConfig) -> dict[str, Any]:
    """The always-on checks of the filter section (its settings but the steps)."""
    return {k: v for k, v in identity(cfg.filter).items() if k != "steps"}


#: The pipeline, in order. ``report`` is rebuilt by the pipeline after every invocation (it reads the
#: declared outputs of the others) and has no row here.
TABLE: tuple[Stage, ...] = (
    Stage("retrieve", "retrieve", _retrieve,
          params=lambda ctx: {"retrieve": ctx.cfg.retrieve, "eval": ctx.eval_ids, "tune": ctx.tune_ids}),
    Stage("generate", "generate", _generate, enabled=_synthesizing,
          params=lambda ctx: {"generate": ctx.cfg.generate, "seed": ctx.cfg.seed,
                              "train_split": ctx.cfg.dataset.train_split},
          # a larger random sample contains the smaller one: more documents extend the queries file
          grows=("n_docs",), growable=lambda ctx: ctx.cfg.generate.doc_selection == "random"),
    Stage("filter", "filter", _filter, inputs=(("generate", "queries"),), enabled=_training,
          params=lambda ctx: {"filter": ctx.cfg.filter, "bm25": ctx.cfg.retrieve.index_params(), "seed": ctx.cfg.seed}),
    Stage("pseudo-dev", None, _pseudo_dev, inputs=(("generate", "queries"),), enabled=lambda ctx: ctx.pseudo_dev,
          params=lambda ctx: {"retrieve": ctx.cfg.retrieve, "seed": ctx.cfg.seed, "checks": _checks(ctx.cfg),
                              "documents": ctx.cfg.rerank.tune_queries,
                              # a run that trains nothing holds out every document (absent: a quarter)
                              **({} if ctx.training else {"training": False})}),
    Stage("negatives", "negatives", _negatives, inputs=(("filter", "filtered"),), enabled=_training,
          extra_inputs=lambda ctx: {"pseudo_dev": ctx.out("pseudo-dev", "docs")} if ctx.pseudo_dev else {},
          params=lambda ctx: {"negatives": ctx.cfg.negatives, "bm25": ctx.cfg.retrieve.index_params(),
                              "seed": ctx.cfg.seed, "qrels_split": ctx.cfg.dataset.train_split}),
    Stage("train", "train", _train, inputs=(("negatives", "train"),), enabled=_training,
          params=lambda ctx: {"train": ctx.cfg.train, "seed": ctx.cfg.seed},
          # settings applied after the last step: another value re-uses the finished run's last checkpoint
          reuses=TrainConfig.AFTER_TRAINING),
    Stage("rerank", "rerank", _rerank, extra_inputs=_rerank_inputs,
          params=lambda ctx: {"rerank": ctx.cfg.rerank, "model_type": ctx.model()[1], "eval": ctx.eval_ids,
                              "seed": ctx.cfg.seed, "retrieve": ctx.cfg.retrieve, "tune": ctx.tune_split,
                              # the start checkpoint a label-free training run compares its model with
                              **({"start": ctx.start_model} if ctx.compares_start else {})}),
    Stage("evaluate", "evaluate", _evaluate, extra_inputs=_evaluated_runs, enabled=lambda ctx: ctx.judged,
          skipped=lambda ctx: "the collection has no judged split (no qrels/test.tsv and no dataset.eval_split): "
          f"nothing to score; the run's ranker is in {ctx.out('rerank', 'ranker').relative_to(ctx.run_dir)}",
          params=lambda ctx: {"evaluate": ctx.cfg.evaluate, "split": ctx.eval_split, "eval": ctx.eval_ids,
                              "seed": ctx.cfg.seed}),
)
