"""Helpers shared by the subcommands: the ``--config`` flag, flags generated from a stage's parameter
object, and flag-over-config merging.

A stage's parameters are written once, as the fields of its config section (``inpars.config``); its
subcommand's flags are generated from them, with the type, choices, default and description of the field::

    >>> import argparse
    >>> from inpars.config import NegativesConfig
    >>> p = argparse.ArgumentParser()
    >>> add_section_flags(p, NegativesConfig)
    >>> section_values(p.parse_args(["--n-negatives", "3", "--method", "random"]), NegativesConfig)
    {'n_negatives': 3, 'method': 'random'}
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from inpars.config import PipelineConfig, load_config, load_config_dict, section_overrides, set_dotted

_NONE_WORDS = frozenset({"none", "null"})


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", help="YAML config; flags given on the command line override its values"
    )


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON when it parses (numbers, true/false, lists), else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_option_arg(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A repeatable ``flag KEY=VALUE`` (:func:`parse_option`) for a dict field of a config section; the
    ``(key, value)`` pairs are merged over the config's mapping by the subcommand."""
    parser.add_argument(flag, action="append", type=parse_option, default=None, metavar="KEY=VALUE", help=help)


def _dest(model: type[BaseModel], name: str) -> str:
    return f"{model.__name__}.{name}"


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _converter(kind: Any, nullable: bool, flag: str) -> Callable[[str], Any] | None:
    base: Callable[[str], Any]
    if kind in (int, float, str):
        base = kind
    elif typing.get_origin(kind) is typing.Literal:
        base = str
    else:
        return None

    def convert(text: str) -> Any:
        if nullable and text.strip().lower() in _NONE_WORDS:
            return None
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: expected {getattr(base, '__name__', base)}, got {text!r}") from None

    convert.__name__ = getattr(base, "__name__", "value")
    return convert


def _default_text(info: Any) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return ""
    else:
        value = info.default
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return f" (default: {value})" if value not in (None, "") else ""


def field_choices(info: Any) -> list[str] | None:
    """Choices of a field: its ``Literal`` values, or ``json_schema_extra['choices']`` (a list or a
    callable returning one, e.g. a registry's ``names``)."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    given = extra.get("choices")
    if given is not None:
        return list(given() if callable(given) else given)
    kind, _ = _unwrap(info.annotation)
    if typing.get_origin(kind) is list:
        (kind,) = typing.get_args(kind) or (Any,)
    if typing.get_origin(kind) is typing.Literal:
        return [str(v) for v in typing.get_args(kind)]
    return None


def add_section_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    *,
    skip: Iterable[str] = (),
    helps: dict[str, str] | None = None,
    aliases: dict[str, list[str]] | None = None,
) -> None:
    """Add ``--field-name`` for each scalar or list field of ``model`` (dicts and nested models are skipped).

    Flags not given stay unset (they do not override the config). A nullable field takes ``none``; a
    boolean field gets ``--flag``/``--no-flag``; a list field takes several values. ``helps`` replaces a
    field's description in the help; ``aliases`` adds other option strings for a field.
    """
    skipped = set(skip)
    for name, info in model.model_fields.items():
        if name in skipped:
            continue
        flag = "--" + name.replace("_", "-")
        flags = [flag, *(aliases or {}).get(name, [])]
        kind, nullable = _unwrap(info.annotation)
        choices = field_choices(info)
        text = (helps or {}).get(name) or info.description or ""
        text = (text + _default_text(info)).strip()
        if choices:
            text += f"; one of: {', '.join(choices)}"
        kw: dict[str, Any] = {"dest": _dest(model, name), "default": argparse.SUPPRESS, "help": text or None}
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
            continue
        is_list = typing.get_origin(kind) is list
        item = (typing.get_args(kind) or (str,))[0] if is_list else kind
        convert = _converter(item, nullable and not is_list, flag)
        if convert is None:
            continue  # dicts and nested sections have their own flags or none
        kw["metavar"] = name.upper()
        parser.add_argument(*flags, type=convert, nargs="+" if is_list else None, **kw)
        if choices:
            _check_choices(parser, flag, choices)


def _check_choices(parser: argparse.ArgumentParser, flag: str, choices: list[str]) -> None:
    # argparse checks choices after conversion: a nullable value converted to None is allowed too
    action = next(a for a in parser._actions if flag in a.option_strings)
    action.choices = _Choices(choices)


class _Choices(list):  # type: ignore[type-arg]
    def __contains__(self, value: object) -> bool:
        if isinstance(value, list):
            return all(list.__contains__(self, v) for v in value)
        return value is None or list.__contains__(self, value)


def section_values(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The values of ``model``'s fields given as flags (absent ones left out)."""
    prefix = f"{model.__name__}."
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}


def resolve_config(
    args: argparse.Namespace, section: str, fields: dict[str, Any], dataset: str | None = None
) -> PipelineConfig:
    """Load ``--config`` (if any) and apply the flags in ``fields`` (None = not given) to ``section``.

    ``dataset`` overrides ``dataset.name``. Without ``--config`` a config is built from the flags alone.
    """
    overrides = section_overrides(section, fields)
    if dataset is not None:
        overrides["dataset.name"] = dataset
    if getattr(args, "config", None):
        return load_config(args.config, overrides)
    data: dict[str, Any] = {}
    for key, value in overrides.items():
        set_dotted(data, key, value)
    data.setdefault("dataset", {}).setdefault("name", "")
    return load_config_dict(data, source="command-line flags")
