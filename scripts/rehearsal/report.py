"""The rehearsal's report: for each step, how long it took, the requests made, those that failed
and the slowest; then what the checks found."""

from __future__ import annotations

from dataclasses import dataclass, field

from rehearsal.traffic import Ledger


@dataclass(frozen=True)
class StepFigures:
    name: str
    seconds: float
    requests: int
    failed: int
    slowest_ms: float
    slowest: str
    p99_ms: float


@dataclass
class Report:
    steps: list[StepFigures] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    summary: dict[str, int | float | str] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [
            "# Rolling upgrade rehearsal",
            "",
            "| Step | Seconds | Requests | Failed | p99 (ms) | Slowest (ms) | Slowest request |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for s in self.steps:
            lines.append(
                f"| {s.name} | {s.seconds:.1f} | {s.requests} | {s.failed} | {s.p99_ms:.0f}"
                f" | {s.slowest_ms:.0f} | {s.slowest} |"
            )
        lines += ["", *(f"- {key}: {value}" for key, value in self.summary.items()), ""]
        if self.problems:
            lines += ["## Problems", "", *(f"- {p}" for p in self.problems)]
        else:
            lines.append("No problem found: nothing failed, nothing was lost or doubled.")
        return "\n".join(lines) + "\n"


def step_figures(ledger: Ledger, name: str, seconds: float) -> StepFigures:
    outcomes = [o for o in ledger.outcomes if o.step == name]
    if not outcomes:
        return StepFigures(name, seconds, 0, 0, 0.0, "-", 0.0)
    ordered = sorted(outcomes, key=lambda o: o.seconds)
    slowest = ordered[-1]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return StepFigures(
        name,
        seconds,
        len(outcomes),
        sum(o.failed for o in outcomes),
        slowest.seconds * 1000,
        f"{slowest.operation} on {slowest.replica}",
        p99.seconds * 1000,
    )
