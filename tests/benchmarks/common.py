"""Shared shape of benchmark results: every bench module returns rows of this kind."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    area: str  # e.g. "chat", "storage", "summarize"
    metric: str  # what was measured, in words
    value: float
    unit: str  # "ratio", "ms", "tok/s", "%", ...
    target: str = ""  # e.g. ">= 0.97", "<= 50 ms"; empty when only recorded
    met: bool | None = None  # None when there is no target
    note: str = ""

    def cells(self) -> list[str]:
        verdict = "" if self.met is None else ("yes" if self.met else "**no**")
        value = f"{self.value:.3f}" if abs(self.value) < 10 else f"{self.value:,.1f}"
        return [self.area, self.metric, f"{value} {self.unit}", self.target, verdict, self.note]


def markdown_table(rows: list[Row]) -> str:
    head = ["area", "metric", "value", "target", "met", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)
