"""Size limits of the source: no module over 500 lines and no function over 80 lines in ``src/inpars``.

The modules and functions still over the limits are listed below with the size they may not exceed; the
list only shrinks: an entry that grows fails, a new offender fails, and an entry that is back under the
limit fails until it is removed from the list (so a fixed one cannot creep back).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "inpars"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

#: still over the limits (issue 27, item 5), each with its current size as a ceiling
MODULES_OVER: dict[str, int] = {}
FUNCTIONS_OVER: dict[str, int] = {}


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text(encoding="utf-8")
        modules[rel] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                key = f"{rel}:{node.name}"
                functions[key] = max(functions.get(key, 0), node.end_lineno - node.lineno + 1)
    return modules, functions


def _check(sizes: dict[str, int], limit: int, allowed: dict[str, int], what: str) -> list[str]:
    problems = []
    for name, n in sorted(sizes.items()):
        if n > limit and name not in allowed:
            problems.append(f"{what} {name}: {n} lines, over {limit}; split it")
        elif name in allowed and n > allowed[name]:
            problems.append(f"{what} {name}: {n} lines, more than its ceiling {allowed[name]}; split it")
        elif name in allowed and n <= limit:
            problems.append(f"{what} {name}: {n} lines, under {limit} now; remove it from the list")
    problems += [f"{what} {name}: listed but gone; remove it from the list" for name in allowed if name not in sizes]
    return problems


def test_no_module_or_function_grows_past_the_limits() -> None:
    modules, functions = _sizes()
    problems = _check(modules, MAX_MODULE_LINES, MODULES_OVER, "module")
    problems += _check(functions, MAX_FUNCTION_LINES, FUNCTIONS_OVER, "function")
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_new_offender_and_a_fixed_one() -> None:
    assert _check({"a.py": 501}, 500, {}, "module") == ["module a.py: 501 lines, over 500; split it"]
    assert _check({"a.py": 90}, 80, {"a.py": 85}, "function")[0].endswith("more than its ceiling 85; split it")
    assert _check({"a.py": 70}, 80, {"a.py": 85}, "function")[0].endswith("remove it from the list")
