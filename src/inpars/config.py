"""One YAML configuration for the whole pipeline, validated on load.

Every section is a pydantic model that forbids unknown keys, so a typo is an error that names its key path::

    >>> load_config_dict({"dataset": {"name": "scifact"}, "generate": {"temprature": 0.7}})
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: invalid configuration:
      generate.temprature: unknown key (Extra inputs are not permitted)

Field names of a section are the keyword arguments of the stage's library function, so
``generate_queries(dataset, **cfg.generate.model_dump())`` is how the pipeline calls a stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inpars.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(Section):
    name: str = Field(description="a BEIR folder path, a name under $INPARS_DATA_HOME, or 'irds:ID'")
    train_split: str = "train"
    eval_split: str = "test"
    max_eval_queries: int | None = Field(None, ge=1, description="evaluate on the first N test queries")


class RetrieveConfig(Section):
    k: int = Field(1000, ge=1)
    k1: float = Field(0.9, gt=0)
    b: float = Field(0.4, ge=0, le=1)
    stopwords: str | None = "en"
    stemmer: str | None = "english"

    def index_params(self) -> dict[str, Any]:
        """The parameters that define the BM25 index (everything but the depth ``k``)."""
        return self.model_dump(exclude={"k"})


class GenerateConfig(Section):
    prompt: str = "inpars"
    template: str | None = Field(None, description="template file for prompt 'template'")
    backend: str = "llamacpp"
    model: str = "smollm2-135m"
    n_docs: int = Field(1000, ge=1)
    queries_per_doc: int = Field(1, ge=1)
    n_examples: int | None = Field(None, ge=0, description="few-shot examples (prompt default when unset)")
    max_doc_tokens: int = Field(256, ge=8)
    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    chat: bool = False
    min_doc_chars: int = Field(0, ge=0, description="skip documents shorter than this when sampling")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(None, ge=1, description="prompts per backend call (backend default)")


class FilterStep(Section):
    name: str
    top_k: int | None = Field(default=None, ge=1)
    top_fraction: float | None = Field(default=None, gt=0, le=1)
    model: str | None = None
    depth: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)


class FilterConfig(Section):
    steps: list[FilterStep] = Field(default_factory=lambda: [FilterStep(name="logprob", top_fraction=0.5)])
    min_words: int = Field(2, ge=0)
    max_words: int = Field(64, ge=1)
    copy_threshold: float | None = Field(
        0.9, gt=0, le=1, description="drop a query when a run of this share of its tokens is copied from the document"
    )


class NegativesConfig(Section):
    method: Literal["bm25", "random"] = "bm25"
    n_negatives: int = Field(1, ge=1)
    depth: int = Field(1000, ge=1)
    skip_top: int = Field(0, ge=0, description="ignore the first N BM25 hits (likely unlabelled positives)")


class TrainConfig(Section):
    model_type: Literal["cross-encoder", "monot5", "bi-encoder"] = "cross-encoder"
    model: str = "minilm-l6"
    loss: Literal["bce", "listwise"] = "bce"
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(256, ge=16)
    learning_rate: float = Field(2e-5, gt=0)
    max_steps: int | None = Field(None, ge=1)
    epochs: float = Field(1.0, gt=0)
    warmup_steps: int = Field(0, ge=0)
    gradient_accumulation_steps: int = Field(1, ge=1)
    save_steps: int = Field(100, ge=1)
    bf16: bool = False
    weight_decay: float = Field(0.01, ge=0)


class RerankConfig(Section):
    model: str | None = Field(None, description="checkpoint; default: the model trained by the pipeline")
    model_type: Literal["cross-encoder", "monot5", "bi-encoder"] | None = None
    first_stage: str | None = Field(None, description="TREC run to rerank; default: BM25 from 'retrieve'")
    depth: int = Field(100, ge=1)
    batch_size: int = Field(32, ge=1)
    max_length: int = Field(256, ge=16)
    interpolate: bool = False
    alphas: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    tune_split: str = "train"
    tune_queries: int = Field(100, ge=1)
    engine: Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"] = Field(
        "auto", description="auto: onnx (fp32, same scores as torch) on CPU when the [onnx] extra is installed"
    )


def _default_tests() -> list[Literal["ttest", "permutation"]]:
    return ["ttest", "permutation"]


class EvaluateConfig(Section):
    measures: list[str] = Field(default_factory=lambda: ["nDCG@10", "R@100", "AP@1000", "RR@10"])
    baseline: str | None = "bm25"
    tests: list[Literal["ttest", "permutation"]] = Field(default_factory=lambda: _default_tests())
    permutations: int = Field(10000, ge=100)


class PipelineConfig(Section):
    run_dir: str = "runs/inpars"
    seed: int = 1
    threads: int | None = Field(None, ge=1)
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


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read and validate a YAML config; ``overrides`` maps dotted key paths to values (CLI flags).

    Relative paths inside the config stay relative to the working directory.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return load_config_dict(data, source=str(path))


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``key='a.b'``, creating mappings on the way."""
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def section_overrides(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """Turn CLI values (None meaning 'not given') into dotted overrides for ``section``."""
    return {f"{section}.{k}": v for k, v in values.items() if v is not None}
