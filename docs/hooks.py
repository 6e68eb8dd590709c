"""MkDocs hooks (``hooks:`` in mkdocs.yml): each ``<!-- generated: NAME -->`` marker of a page is replaced by
the text ``docs/gen_reference.py`` generates from the code and ``benchmarks/results`` when the site is built,
so generated parts are never stale and nothing generated is committed."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@functools.cache
def _generator() -> Any:
    if str(ROOT / "src") not in sys.path and not _importable("inpars"):
        sys.path.insert(0, str(ROOT / "src"))
    spec = importlib.util.spec_from_file_location("inpars_docs_gen_reference", HERE / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- generated:" not in markdown:
        return markdown
    return _generator().expand(markdown, page.file.src_uri)
