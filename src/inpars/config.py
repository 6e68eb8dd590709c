"""One YAML configuration for the whole pipeline, validated on load.

Every section is a pydantic model that forbids unknown keys, so a typo is an error that names its key path::

    >>> load_config_dict({"dataset": {"name": "scifact"}, "generate": {"temprature": 0.7}})
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: invalid configuration:
      generate.temprature: unknown key (Extra inputs are not permitted)

A section is the parameter object of its stage's library function: the pipeline calls
``generate_queries(dataset, out, cfg.generate, seed=...)``, and ``generate_queries(dataset, out, n_docs=5)``
builds the section from the keywords (:func:`section_params`), so a default exists here only.

Fields that change speed but never a result (threads, scoring and generation batch sizes, checkpoint
interval) are declared with :func:`~inpars.fingerprint.runtime_field`; :func:`~inpars.fingerprint.identity`
leaves them (and the runtime keys of ``generate.backend_options``) out of every cache key::

    >>> from inpars.fingerprint import identity
    >>> a = GenerateConfig(batch_size=1, backend_options={"n_threads": 1})
    >>> b = GenerateConfig(batch_size=16, backend_options={"n_threads": 2})
    >>> identity(a) == identity(b)
    True

A setting added after results were made, whose default keeps the earlier behaviour
(``generate.doc_selection``), is declared with :func:`~inpars.fingerprint.added_field`: part of a cache key
only when set to something else, so adding it leaves finished stages valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from inpars.catalog import ENGINES, FAMILIES, build_filters, check_selection
from inpars.errors import ConfigError
from inpars.evaluation_rules import parse_measures
from inpars.fingerprint import added_field, runtime_field

#: the longest input, in tokens, any setting may ask a model for (beyond every model this toolkit runs)
MAX_TOKENS = 131072


class Section(BaseModel):
    #: unknown keys are errors; so are non-finite numbers (``inf``, ``nan``) in any float field
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DatasetConfig(Section):
    name: str = Field(description="a BEIR folder path, a name under $INPARS_DATA_HOME, or 'irds:ID'")
    train_split: str | None = Field(
        None, description="opt-in: a labelled split whose judgements the run may read (promptagator examples, "
        "negatives that skip judged documents); unset: label-free")
    eval_split: str | None = Field(
        None, description="the judged split evaluate scores (only evaluate reads its judgements); unset: 'test' "
        "when the dataset has qrels/test.tsv, else no evaluation (a collection without judgements)")
    max_eval_queries: int | None = Field(None, ge=1, description="evaluate on the first N test queries")


#: BM25 defaults (Pyserini's BEIR "flat" settings), spelled here only: :mod:`inpars.retrieval` uses them.
BM25_K1 = 0.9
BM25_B = 0.4
BM25_STOPWORDS = "en"
BM25_STEMMER = "english"


class RetrieveConfig(Section):
    k: int = Field(1000, ge=1, description="documents retrieved per query")
    k1: float = Field(BM25_K1, gt=0, description="BM25 term-frequency saturation")
    b: float = Field(BM25_B, ge=0, le=1, description="BM25 length normalisation")
    stopwords: str | None = Field(BM25_STOPWORDS, description="stopword list (bm25s name), or none")
    stemmer: str | None = Field(BM25_STEMMER, description="Snowball stemmer language, or none")
    backend: str = Field("bm25s", description="first-stage engine: bm25s, or pyserini (Lucene; the [pyserini] extra)")

    def index_params(self) -> dict[str, Any]:
        """The parameters that define the BM25 index (everything but the depth ``k``)."""
        return self.model_dump(exclude={"k"})


class GenerateConfig(Section):
    prompt: str = Field("inpars", description="prompt name (inpars, inpars-forms, inpars-gbq, promptagator, template)")
    template: str | None = Field(None, description="template file for prompt 'template'")
    backend: str = Field("llamacpp", description="generation backend (llamacpp, transformers, vllm, openai)")
    model: str = Field("smollm2-135m", description="packaged model name, local path or hub id")
    n_docs: int = Field(1000, ge=1, description="documents to sample and write queries for")
    queries_per_doc: int = Field(1, ge=1, le=1000, description="queries written per document")
    n_examples: int | None = Field(None, ge=0, description="few-shot examples (prompt default when unset)")
    max_doc_tokens: int = Field(256, ge=8, le=MAX_TOKENS, description="document cut, in the generator's tokens")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="longest query, in tokens")
    temperature: float = Field(0.0, ge=0, description="0: greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    chat: bool = Field(False, description="wrap prompts in the model's chat template")
    min_doc_chars: int = Field(0, ge=0, description="skip documents shorter than this when sampling")
    doc_selection: str = added_field(
        "random", description="which documents: random (seeded sample), clusters (DUQGen: representatives "
        "of k-means clusters of bi-encoder embeddings) or ids (the documents listed in doc_ids)"
    )
    selection_options: dict[str, Any] = added_field(
        default_factory=dict, description="clusters: model, clusters, temperature, max_length, fit_sample; ids: doc_ids"
    )
    backend_options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = runtime_field(
        None, ge=1, description="prompts per backend call (backend default); never changes the queries"
    )
    executor: Literal["local", "ray"] = runtime_field(
        "local", description="where generation runs: this process, or a Ray cluster (never changes the queries)"
    )
    executor_options: dict[str, Any] = runtime_field(
        {}, description="ray: address, actors, num_cpus, cpus_per_actor, gpus_per_actor, max_restarts, runtime_env"
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """``engine``/``engine_options``, this section's names before 0.2, are read as ``executor``/
        ``executor_options`` (one word for where work runs, as in ``rerank`` and the filter steps)."""
        if isinstance(data, dict) and ("engine" in data or "engine_options" in data):
            import logging

            data = dict(data)
            for old, new in (("engine", "executor"), ("engine_options", "executor_options")):
                if old in data:
                    if new in data:
                        raise ValueError(f"'{old}' is the old name of '{new}': give one of them")
                    logging.getLogger(__name__).warning("generate.%s is now generate.%s", old, new)
                    data[new] = data.pop(old)
        return data

    @model_validator(mode="after")
    def _check_selection(self) -> GenerateConfig:
        try:
            check_selection(self.doc_selection, self.selection_options)
        except (ConfigError, LookupError) as exc:
            raise ValueError(str(exc)) from None
        return self


def _checked_executor_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options of a Ray executor (:func:`inpars.ray_cluster.check_options`), checked at load time."""
    from inpars.ray_cluster import check_options

    try:
        return check_options("ray", options, options_key="executor_options")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


ExecutorOptions = Annotated[dict[str, Any], AfterValidator(_checked_executor_options)]
EXECUTOR_HELP = "where scoring runs: this process, or a Ray cluster (never changes a result)"
EXECUTOR_OPTIONS_HELP = "ray: address, actors, num_cpus, cpus_per_actor, gpus_per_actor, max_restarts, runtime_env"


class FilterStep(Section):
    name: str
    top_k: int | None = Field(default=None, ge=1)
    top_fraction: float | None = Field(default=None, gt=0, le=1)
    model: str | None = None
    depth: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    executor: Literal["local", "ray"] = runtime_field("local", description=EXECUTOR_HELP)
    executor_options: ExecutorOptions = runtime_field({}, description=EXECUTOR_OPTIONS_HELP)


def _checked_steps(steps: list[FilterStep]) -> list[FilterStep]:
    """Each step names a registered filter (:data:`inpars.catalog.FILTERS`, which imports the filter's module)
    with options it declares: checked when the config loads, so a typo never waits for generation to finish."""
    try:
        build_filters(steps)
    except (ConfigError, LookupError) as exc:
        raise ValueError(str(exc)) from None
    return steps


class FilterConfig(Section):
    steps: Annotated[list[FilterStep], AfterValidator(_checked_steps)] = Field(
        default_factory=lambda: [FilterStep(name="logprob", top_fraction=0.5)],
        description="filter steps run in order after the always-on checks")
    min_words: int = Field(2, ge=0, description="drop queries with fewer words")
    max_words: int = Field(64, ge=1, description="drop queries with more words")
    copy_threshold: float | None = Field(
        0.9, gt=0, le=1, description="drop a query when a run of this share of its tokens is copied from the document"
    )


class NegativesConfig(Section):
    method: Literal["bm25", "random", "dense"] = Field(
        "bm25", description="where negatives come from (dense: the BM25 hits reordered by the dense 'model')")
    n_negatives: int = Field(1, ge=1, le=1000, description="negatives per query")
    depth: int = Field(1000, ge=1, description="BM25 hits negatives are drawn from")
    skip_top: int = Field(0, ge=0, description="ignore the first N hits (likely unlabelled positives)")
    teacher: Literal["none", "fused"] = Field(
        "none", description="pseudo-label every example (GPL): 'fused' = min-max BM25 and dense 'model' scores")
    teacher_weight: float = Field(0.5, ge=0, le=1, description="weight of the dense score in the fused teacher")
    model: str = Field("minilm-l6", description="zero-shot bi-encoder for method 'dense' and the teacher")
    max_length: int = Field(256, ge=16, le=MAX_TOKENS, description="tokens per text for the dense model")


def _model_type(value: str) -> str:
    """A registered model family (:data:`inpars.catalog.FAMILIES`: its name, nothing imported)."""
    if value not in FAMILIES:
        raise ValueError(FAMILIES.unknown(value))
    return value


def _engine(value: str) -> str:
    """A registered scoring engine (:data:`inpars.catalog.ENGINES`)."""
    if value not in ENGINES:
        raise ValueError(ENGINES.unknown(value))
    return value


def _model_types() -> list[str]:
    return FAMILIES.names()


def _engines() -> list[str]:
    return ENGINES.names()


# ``choices``: the CLI flag generated from such a field (inpars.cli._common) lists the registry's names
ModelType = Annotated[str, AfterValidator(_model_type), Field(json_schema_extra={"choices": _model_types})]
OptionalModelType = Annotated[
    str | None, AfterValidator(lambda v: None if v is None else _model_type(v)),
    Field(json_schema_extra={"choices": _model_types}),
]
EngineName = Annotated[str, AfterValidator(_engine), Field(json_schema_extra={"choices": _engines})]


class TrainConfig(Section):
    model_type: ModelType = "cross-encoder"
    model: str = Field("minilm-l6", description="start checkpoint: packaged name, local path or hub id")
    loss: Literal["bce", "listwise", "margin-mse"] = Field(
        "bce", description="pointwise BCE, listwise softmax, or margin-MSE distillation from the examples' teacher scores"
    )
    batch_size: int = Field(16, ge=1, description="training groups per step")
    max_length: int = Field(256, ge=16, le=MAX_TOKENS, description="tokens per (query, document) pair")
    learning_rate: float = Field(2e-5, gt=0, description="peak learning rate")
    max_steps: int | None = Field(None, ge=1, description="stop after N steps (overrides epochs)")
    epochs: float = Field(1.0, gt=0, description="passes over the training data")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    gradient_accumulation_steps: int = Field(1, ge=1, description="steps accumulated per update")
    save_steps: int = runtime_field(100, ge=1, description="checkpoint every N steps (resume points only)")
    bf16: bool = Field(False, description="bfloat16 mixed precision")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    average_start: float = added_field(
        0.0, ge=0, le=1, description="share of the start checkpoint in the saved weights (WiSE-FT weight "
        "averaging: (1-w) trained + w start); 0: the trained weights")

    batches: Literal["random", "no-duplicates"] = added_field(
        "random", description="random: batches of a random order; no-duplicates: a seeded order packed so that no "
        "text (query or document) appears twice in a batch, as sentence-transformers' NoDuplicatesBatchSampler "
        "(in-batch negatives then never include a copy of a query's own positive)")

    #: settings applied after the last training step: the checkpoints do not depend on them, so a finished
    #: training is reused when only they change (train_reranker's run identity, the pipeline's train stage)
    AFTER_TRAINING: ClassVar[tuple[str, ...]] = ("average_start",)


def _weights(values: list[float]) -> list[float]:
    """Fusion weights: at least one, each in [0, 1]."""
    if not values:
        raise ValueError("give at least one weight")
    bad = [v for v in values if not 0 <= v <= 1]
    if bad:
        raise ValueError(f"each weight is the reranker's share, in 0..1; got {bad[0]:g}")
    return values


class RerankConfig(Section):
    model: str | None = Field(None, description="checkpoint; default: the model trained by the pipeline")
    model_type: OptionalModelType = None
    first_stage: str | None = Field(None, description="TREC run to rerank; default: BM25 from 'retrieve'")
    depth: int = Field(100, ge=1, description="documents reranked per query (the rest keep their order)")
    batch_size: int = runtime_field(32, ge=1, description="pairs per scoring batch (speed only)")
    max_length: int | None = Field(
        None, ge=16, le=MAX_TOKENS, description="tokens per (query, document) pair; unset: the length the model was "
        "saved with")
    interpolate: bool = Field(True, description="also write the fusion of reranker and first-stage scores")
    alphas: Annotated[list[float], AfterValidator(_weights)] = Field(
        default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        description="fusion weights tried (reranker share, each in 0..1)")
    tune_split: str | None = Field(
        None, description="opt-in: a labelled split to tune the fusion weight on; unset: tune it on synthetic "
        "queries held out of training (label-free)")
    select_start: bool = Field(True, description="label-free model selection: also score the start checkpoint "
                               "(train.model, when of the trained model's type) on the pseudo-dev set and rerank "
                               "with whichever fuses better there")
    tune_queries: int = Field(100, ge=1, description="queries the fusion weight is tuned on (held-out documents "
                              "when label-free)")
    alpha: float | None = added_field(
        None, ge=0, le=1, description="a given fusion weight (reranker share), used as it is; unset: the weight "
        "of 'alphas' that fuses best on the tuning set")
    min_decision_queries: int = Field(
        30, ge=1, description="fewest tuning queries a choice is made on: with fewer, the start model and weight "
        "0.5 are kept (inpars.decision)")
    decision_p: float = Field(
        0.05, gt=0, le=1, description="the fine-tuned model replaces the start model only when it fuses better on "
        "the tuning set with a paired t-test p-value below this")
    engine: EngineName = Field(
        "auto", description="auto: the faster of onnx and torch fp32 (the same scores within 1e-4) on a CPU, measured "
        "on the first batches and cached per machine and model"
    )
    executor: Literal["local", "ray"] = runtime_field("local", description=EXECUTOR_HELP)
    executor_options: ExecutorOptions = runtime_field({}, description=EXECUTOR_OPTIONS_HELP)


def _default_tests() -> list[Literal["ttest", "permutation"]]:
    return ["ttest", "permutation"]


def _checked_measures(measures: list[str]) -> list[str]:
    """Measures ir_measures (or trec_eval) knows, with cut-offs of at least 1: checked when the config
    loads, not after generation and training."""
    try:
        parse_measures(measures)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return measures


class EvaluateConfig(Section):
    measures: Annotated[list[str], AfterValidator(_checked_measures)] = Field(
        default_factory=lambda: ["nDCG@10", "R@100", "AP@1000", "RR@10"])
    baseline: str | None = "bm25"
    tests: list[Literal["ttest", "permutation"]] = Field(default_factory=lambda: _default_tests())
    permutations: int = Field(10000, ge=100)


class PipelineConfig(Section):
    run_dir: str = "runs/inpars"
    seed: int = Field(1, ge=0, description="the seed every per-item seed derives from")
    threads: int | None = runtime_field(None, ge=1, description="CPU threads (speed only)")
    dataset: DatasetConfig
    retrieve: RetrieveConfig = Field(default_factory=lambda: RetrieveConfig())
    generate: GenerateConfig = Field(default_factory=lambda: GenerateConfig())
    filter: FilterConfig = Field(default_factory=lambda: FilterConfig())
    negatives: NegativesConfig = Field(default_factory=lambda: NegativesConfig())
    train: TrainConfig = Field(default_factory=lambda: TrainConfig())
    rerank: RerankConfig = Field(default_factory=lambda: RerankConfig())
    evaluate: EvaluateConfig = Field(default_factory=lambda: EvaluateConfig())


def _format_errors(exc: ValidationError, source: str | None) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key ({msg})"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "value_error":  # our own validators' messages, without pydantic's wrapping
            msg = str(err.get("ctx", {}).get("error", msg.removeprefix("Value error, ")))
            if msg.startswith(f"{loc}.") or msg.startswith(f"{loc}:"):  # it names its key path already
                lines.append(f"  {msg}")
                continue
        lines.append(f"  {loc}: {msg}")
    where = f" in {source}" if source else ""
    return ConfigError(f"invalid configuration{where}:\n" + "\n".join(lines))


def load_config_dict(data: dict[str, Any], source: str | None = None) -> PipelineConfig:
    """Validate a configuration given as a dict."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration{' in ' + source if source else ''}: expected a mapping")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise _format_errors(exc, source) from None


SectionT = TypeVar("SectionT", bound=Section)


def section_params(model: type[SectionT], params: SectionT | None, fields: Mapping[str, Any], where: str) -> SectionT:
    """The settings of a library call that takes a config section (``generate_queries(dataset, out, params)``):
    ``params``, a ``model`` instance used as it is, or the section's fields as keywords (``fields``), validated
    by building ``model`` once (its defaults are the only ones). ``where`` names the function: a keyword that
    is no field is a :class:`TypeError` (as Python words it), so is giving both; a bad value is the
    :class:`~inpars.errors.ConfigError` a config file gets.

    >>> section_params(RetrieveConfig, None, {"k": 10}, "retrieve").k
    10
    >>> section_params(RetrieveConfig, None, {"kk": 10}, "retrieve")
    Traceback (most recent call last):
    ...
    TypeError: retrieve() got an unexpected keyword argument 'kk'
    >>> section_params(RetrieveConfig, None, {"k": 0}, "retrieve")
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: invalid configuration in retrieve():
      k: Input should be greater than or equal to 1
    """
    if params is not None:
        if fields or not isinstance(params, model):
            got = f"keywords {', '.join(sorted(fields))} too" if fields else f"a {type(params).__name__}"
            raise TypeError(f"{where}() takes a {model.__name__} or its fields as keywords; got {got}")
        return params
    unknown = [key for key in fields if key not in model.model_fields]
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument '{unknown[0]}'")
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        raise _format_errors(exc, f"{where}()") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read and validate a YAML config; ``overrides`` maps dotted key paths to values (CLI flags).

    Relative paths inside the config stay relative to the working directory.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config {path} is a folder; give a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                          "save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config {path} cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if _expanded_size(data) > MAX_CONFIG_VALUES:
        raise ConfigError(f"{path}: the configuration expands to more than {MAX_CONFIG_VALUES:,} values (YAML "
                          "aliases nested in aliases?); write it out plainly")
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {path}: expected a mapping of sections, got "
                          f"{type(data).__name__}")
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return load_config_dict(data, source=str(path))


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last one)."""


def _unique_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if not isinstance(key, (str, int, float, bool)):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key '{key}' given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)  # type: ignore[arg-type]

#: the most values (mappings, lists, scalars) a config file may expand to, aliases counted each time used
MAX_CONFIG_VALUES = 100_000


def _expanded_size(obj: Any, _memo: dict[int, int] | None = None) -> int:
    """How many values ``obj`` holds once every shared (aliased) part is counted where it is used; computed
    per shared object once, so a 'billion laughs' file is measured without being expanded."""
    memo = {} if _memo is None else _memo
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, dict):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in obj.items())
    elif isinstance(obj, list):
        size = 1 + sum(_expanded_size(v, memo) for v in obj)
    else:
        size = 1
    memo[id(obj)] = size
    return size


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``key='a.b'``, creating mappings on the way."""
    parts = key.split(".")
    node = data
    for i, p in enumerate(parts[:-1]):
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"cannot set '{key}': '{where}' is a {type(node).__name__}, not a section")
    node[parts[-1]] = value


def section_overrides(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """Turn CLI values (None meaning 'not given') into dotted overrides for ``section``."""
    return {f"{section}.{k}": v for k, v in values.items() if v is not None}
