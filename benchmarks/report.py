"""Medians, ranges, ratios and the budget, as a plain-text table."""

import statistics
from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Budget:
    """A limit on the ratio ours/peer (``max_ratio``), on ours/bare (``min_ratio``) or on ours alone."""

    max_ratio: Optional[float] = None
    min_ratio: Optional[float] = None
    max_ours: Optional[float] = None

    def describe(self, unit: str) -> str:
        if self.max_ratio is not None:
            return f"ratio <= {self.max_ratio:g}"
        if self.min_ratio is not None:
            return f"ratio >= {self.min_ratio:g}"
        return f"ours <= {self.max_ours:g} {unit}"

    def met(self, ours: float, ratio: Optional[float]) -> Optional[bool]:
        """``ours`` in the unit shown (ms, MiB), not in seconds or bytes."""
        if self.max_ratio is not None:
            return None if ratio is None else ratio <= self.max_ratio
        if self.min_ratio is not None:
            return None if ratio is None else ratio >= self.min_ratio
        return ours <= self.max_ours


@dataclass
class Row:
    label: str
    unit: str
    ours: List[float]
    other: List[float] = field(default_factory=list)
    budget: Optional[Budget] = None
    scale: float = 1.0
    """Multiplies values for display (seconds shown as ms, bytes as MiB)."""

    @property
    def ratio(self) -> Optional[float]:
        if not self.ours or not self.other:
            return None
        other = statistics.median(self.other)
        return statistics.median(self.ours) / other if other else None

    def shown_ratio(self) -> str:
        """The ratio as printed: two decimals, or more where two would round it onto its limit and
        the verdict beside it would then seem to contradict it (0.978 is not >= 0.98)."""
        if self.ratio is None:
            return "-"
        limit = None if self.budget is None else self.budget.max_ratio or self.budget.min_ratio
        digits = 2
        while limit is not None and digits < 6 and round(self.ratio, digits) == limit and self.ratio != limit:
            digits += 1
        return f"{self.ratio:.{digits}f}"

    def measured(self) -> str:
        if self.budget is not None and self.budget.max_ours is not None:
            return _cell(self.ours, self.scale, self.unit)
        return "-" if self.ratio is None else f"ratio {self.shown_ratio()}"

    @property
    def verdict(self) -> Optional[bool]:
        if self.budget is None or not self.ours:
            return None
        return self.budget.met(statistics.median(self.ours) * self.scale, self.ratio)


def _cell(values: List[float], scale: float, unit: str) -> str:
    if not values:
        return "-"
    shown = [value * scale for value in values]
    median = statistics.median(shown)
    digits = 0 if unit == "samples/s" or median >= 100 else 1
    text = f"{median:.{digits}f} {unit}"
    if len(shown) > 1:
        text += f" ({min(shown):.{digits}f}-{max(shown):.{digits}f})"
    return text


def table(title: str, rows: List[Row], other_name: str) -> str:
    header = ["", "ours: median (min-max)", f"{other_name}: median (min-max)", "ratio", "budget", "verdict"]
    lines = []
    for row in rows:
        verdict = row.verdict
        lines.append(
            [
                row.label,
                _cell(row.ours, row.scale, row.unit),
                _cell(row.other, row.scale, row.unit),
                row.shown_ratio(),
                row.budget.describe(row.unit) if row.budget else "",
                "" if verdict is None else ("PASS" if verdict else "FAIL"),
            ]
        )
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]

    def render(cells):
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    out = [f"### {title}", "", render(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    out += [render(line) for line in lines]
    return "\n".join(out)


def failures(rows: List[Row]) -> List[Row]:
    return [row for row in rows if row.verdict is False]
