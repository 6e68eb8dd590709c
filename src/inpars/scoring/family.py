"""What a model family provides, and the registry the families are kept in.

A family is everything the toolkit does differently for one kind of reranker: recognising its
checkpoints, scoring pairs with it, training it, and describing the trained model in its card. Each family
is one module of :mod:`inpars.families` holding a :class:`Family` subclass, registered in
:data:`FAMILIES` under its ``model_type`` name.

This protocol and the registry sit below the families that implement them (:mod:`inpars.families`, which
re-exports them as :mod:`inpars.families.base`) and the code that uses a family by name (training, the
scoring engines' check): :data:`FAMILIES` (:mod:`inpars.catalog`) names every built-in family's module,
imported on first use.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from inpars.catalog import DEFAULT_FAMILY
from inpars.catalog import FAMILIES as _FAMILIES
from inpars.errors import ConfigError
from inpars.models import resolve_model
from inpars.registry import Registry

if TYPE_CHECKING:
    from inpars.records import TrainingExample
    from inpars.scoring.base import Scorer


class Family(ABC):
    """One kind of reranker (``model_type``).

    - :meth:`detect`: whether a checkpoint folder is of this family, from its config (families detect
      disjoint sets of checkpoints; one that no family claims is a :data:`DEFAULT_FAMILY` model);
    - :attr:`scorer`: the :class:`~inpars.scoring.base.Scorer` subclass that scores pairs with it;
    - :attr:`engines`: the engines (:data:`inpars.catalog.ENGINES`) it runs on;
    - :attr:`losses`: the training losses it accepts (the first is its natural one);
    - :meth:`build` / :meth:`finalize`: model, data and loss for training, and the completion of the
      saved folder;
    - :meth:`usage`: the "Usage" section of the model card of a trained model.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    engines: ClassVar[tuple[str, ...]] = ("auto", "torch")
    losses: ClassVar[tuple[str, ...]] = ("bce",)
    loss_reason: ClassVar[str] = ""

    @abstractmethod
    def detect(self, path: str, config: Any = None) -> bool:
        """Whether the checkpoint at ``path`` (its transformers ``config`` when already loaded) is of this
        family."""

    @property
    @abstractmethod
    def scorer(self) -> type[Scorer]:
        """The scorer class of this family."""

    def load_scorer(self, path: str, **kwargs: Any) -> Scorer:
        """A loaded scorer (``kwargs``: batch_size, max_length, engine, threads, device)."""
        return self.scorer(path, **kwargs)

    def check_loss(self, loss: str) -> None:
        """:class:`~inpars.errors.ConfigError` unless this family trains with ``loss``."""
        if loss not in self.losses:
            why = f" ({self.loss_reason})" if self.loss_reason else ""
            raise ConfigError(
                f"model_type '{self.name}' trains with loss {' or '.join(repr(x) for x in self.losses)}{why}, "
                f"not {loss!r}"
            )

    @abstractmethod
    def build(self, base_model: str, examples: list[TrainingExample], *, loss: str, max_length: int) -> Any:
        """:class:`~inpars.training.cross_encoder.TrainingParts` (model, tokenizer, dataset, collator, loss)."""

    def finalize(self, model_dir: Path, max_length: int) -> None:
        """Complete a saved model folder (run once, by the main process, before it is moved into place);
        nothing to do by default."""
        return None

    @abstractmethod
    def usage(self, where: Path) -> str:
        """Markdown: how to load and use the trained model saved at ``where``."""


#: the families by ``model_type`` (:data:`inpars.catalog.FAMILIES`, which names each built-in family's module)
FAMILIES: Registry[Family] = _FAMILIES


def register(family: type[Family]) -> type[Family]:
    """Class decorator: register one instance of ``family`` under its ``name``."""
    FAMILIES.register(family.name)(family())
    return family


def get_family(name: str) -> Family:
    """The family called ``name``; :class:`~inpars.errors.ConfigError` naming the valid ones otherwise."""
    return FAMILIES.get(name)


def detect_model_type(model: str) -> str:
    """The family of a checkpoint (a local folder or hub id), read from its config.

    Every registered family's :meth:`Family.detect` is asked; a checkpoint that none claims (a bare
    encoder) is a :data:`DEFAULT_FAMILY` (``cross-encoder``) model, which gets a new head.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    found = [name for name in FAMILIES.names() if FAMILIES.get(name).detect(model, config)]
    if len(found) > 1:
        raise ConfigError(f"{model} looks like several model types ({', '.join(found)}); give model_type")
    return found[0] if found else DEFAULT_FAMILY


def resolve_training(train: Any) -> None:
    """Fill in what a :class:`~inpars.config.TrainConfig` leaves to its checkpoint, in place: ``model_type``
    unset is the start checkpoint's own family (:func:`detect_model_type`: a sentence-transformers model
    trains as the bi-encoder it is; :data:`DEFAULT_FAMILY` where the checkpoint cannot be read here), and
    ``loss`` unset is that family's first loss where the default does not fit it."""
    if "model_type" not in train.model_fields_set:
        with contextlib.suppress(OSError, ValueError, ConfigError):  # unreadable here: the default type
            train.model_type = detect_model_type(resolve_model(train.model))
    losses = FAMILIES.get(train.model_type).losses if train.model_type in FAMILIES else ()
    if "loss" not in train.model_fields_set and losses and train.loss not in losses:
        train.loss = losses[0]


def family_help() -> str:
    """One line per family, for help texts."""
    return "; ".join(f"{name}: {FAMILIES.get(name).description}" for name in FAMILIES.names())
