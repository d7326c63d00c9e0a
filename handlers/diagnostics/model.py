"""What a diagnostic run gives back, shared by the runner (which fills it) and the renderers (which show it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.catalog import DiagnosticQuery, Service, Threshold


@dataclass(frozen=True)
class DiagnosticResult:
    service: Service
    query: DiagnosticQuery
    args: Mapping[str, object]  # the bound parameters used
    columns: list[str]  # result columns (cursor.description)
    rows: list[tuple[object, ...]]
    duration_ms: float
    crossed: list[tuple[int, Threshold]]  # (row index, threshold) for every crossing
    error: str | None = None  # one human line (timeout, missing table with catalog path, unreachable…)
    thresholds: Sequence[Threshold] = field(
        default=()
    )  # the thresholds judged (the catalog's or an override)

    @property
    def crossed_rows(self) -> dict[int, list[Threshold]]:
        """Each marked row's thresholds, in row order."""
        marked: dict[int, list[Threshold]] = {}
        for index, threshold in self.crossed:
            marked.setdefault(index, []).append(threshold)
        return marked


def catalog_path(service: Service, query: DiagnosticQuery, part: str = "sql") -> str:
    """Where in the catalog to fix a query: services[mira-copilot].diagnostics.queries[low-confidence].sql."""
    return f"services[{service.name}].diagnostics.queries[{query.name}].{part}"
