"""The filter report: what each step (and the always-on checks) removed and why, saved beside the output."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.filter.base import Removal

N_EXAMPLES = 3
"""Examples of removed queries kept in the report per reason."""


@dataclass
class StepReport:
    """What one step (or the always-on checks) removed, and why."""

    name: str
    params: dict[str, Any]
    n_in: int
    n_out: int
    removed: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_removed": self.n_in - self.n_out,
            "removed": self.removed,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class FilterReport:
    """Result of :func:`inpars.filter.filter_queries`; saved as JSON beside the output."""

    input: str
    output: str
    report_path: str
    n_input: int
    n_kept: int
    steps: list[StepReport]
    seconds: float = 0.0

    @property
    def n_removed(self) -> int:
        return self.n_input - self.n_kept

    def removed_by_reason(self) -> dict[str, int]:
        """``{"<step>:<reason>": count}`` over all steps."""
        return {f"{s.name}:{r}": n for s in self.steps for r, n in s.removed.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "report": self.report_path,
            "n_input": self.n_input,
            "n_kept": self.n_kept,
            "n_removed": self.n_removed,
            "steps": [s.to_json() for s in self.steps],
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """A few lines for humans."""
        lines = [f"kept {self.n_kept} of {self.n_input} queries -> {self.output}"]
        for s in self.steps:
            why = ", ".join(f"{r} {n}" for r, n in sorted(s.removed.items(), key=lambda kv: -kv[1])) or "-"
            lines.append(f"  {s.name}: {s.n_in} -> {s.n_out} (removed: {why})")
        lines.append(f"report: {self.report_path}")
        return "\n".join(lines)


def step_report(name: str, params: dict[str, Any], n_in: int, removed: list[Removal], seconds: float) -> StepReport:
    """Count the removals by reason and keep the first :data:`N_EXAMPLES` of each (in input order)."""
    counts = Counter(r.reason for r in removed)
    examples: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(removed, key=lambda r: r.candidate.index):
        ex = examples.setdefault(r.reason, [])
        if len(ex) < N_EXAMPLES:
            ex.append({"doc_id": r.candidate.record.doc_id, "query": r.candidate.record.query, **r.detail})
    return StepReport(
        name=name,
        params=params,
        n_in=n_in,
        n_out=n_in - len(removed),
        removed=dict(sorted(counts.items())),
        examples=examples,
        seconds=seconds,
    )


def report_path_for(out: str | Path) -> Path:
    """Where the report of output ``out`` goes: ``filtered.jsonl`` -> ``filtered.report.json``.

    >>> report_path_for("runs/filtered.jsonl").as_posix(), report_path_for("kept").as_posix()
    ('runs/filtered.report.json', 'kept.report.json')
    """
    out = Path(out)
    return out.with_name(out.stem + ".report.json") if out.suffix else out.with_name(out.name + ".report.json")
