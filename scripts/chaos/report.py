"""The soak's report: a Markdown summary (the faults and how long each took to recover, the
traffic, each check's result, every process's memory) and a PNG of throughput, latency, errors
and memory over time with the fault windows shaded."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a CI machine
import matplotlib.pyplot as plt

from chaos.checker import Bounds, memory_slope
from chaos.record import MemorySample, SoakRecord

BIN_SECONDS = 5.0
COLOURS = {
    "kill": "tab:red",
    "term": "tab:orange",
    "restart": "tab:purple",
    "webhook": "tab:brown",
    "slow": "tab:olive",
}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def plot(record: SoakRecord, path: Path) -> None:
    """Write the PNG: four panels on one time axis (seconds since the start)."""
    t0 = record.started
    bins: dict[int, list[float]] = defaultdict(list)
    errors: Counter[int] = Counter()
    refused: Counter[int] = Counter()
    for e in record.exchanges:
        b = int((e.at - t0) // BIN_SECONDS)
        bins[b].append(e.seconds)
        if e.unanswered:
            refused[b] += 1
        elif e.status is not None and e.status >= 500:
            errors[b] += 1
    last = int((record.ended - t0) // BIN_SECONDS) + 1
    xs = [b * BIN_SECONDS for b in range(last)]
    fig, axes = plt.subplots(4, 1, figsize=(12, 11), sharex=True)
    throughput, latency, failures, memory = axes
    throughput.plot(xs, [len(bins[b]) / BIN_SECONDS for b in range(last)], color="tab:blue")
    throughput.set_ylabel("requests/s")
    latency.plot(xs, [_percentile(bins[b], 0.5) * 1000 for b in range(last)], label="p50")
    latency.plot(xs, [_percentile(bins[b], 0.99) * 1000 for b in range(last)], label="p99")
    latency.set_ylabel("latency (ms)")
    latency.set_yscale("symlog")
    latency.legend(loc="upper right")
    failures.bar(xs, [errors[b] for b in range(last)], width=BIN_SECONDS, label="5xx", color="r")
    failures.bar(
        xs,
        [refused[b] for b in range(last)],
        width=BIN_SECONDS,
        bottom=[errors[b] for b in range(last)],
        label="no answer",
        color="grey",
    )
    failures.set_ylabel(f"errors per {BIN_SECONDS:.0f} s")
    failures.legend(loc="upper right")
    by_process: dict[str, list[MemorySample]] = defaultdict(list)
    for sample in record.memory:
        by_process[sample.process].append(sample)
    for process, samples in sorted(by_process.items()):
        memory.plot(
            [s.at - t0 for s in samples], [s.rss_bytes / 2**20 for s in samples], label=process
        )
    memory.set_ylabel("RSS (MiB)")
    memory.legend(loc="upper left", fontsize="x-small", ncol=4)
    memory.set_xlabel("seconds since the start")
    for fault in record.faults:
        colour = COLOURS.get(fault.kind.split("-")[0], "grey")
        for axis in axes:
            axis.axvspan(fault.start - t0, fault.end - t0, color=colour, alpha=0.15)
        throughput.annotate(
            fault.kind,
            (fault.start - t0, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            fontsize="x-small",
        )
    fig.suptitle("Chaos soak: throughput, latency, errors and memory; faults shaded")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def held_by_receiver(record: SoakRecord) -> int:
    """Alerts raised while the receiver was down: their deliveries had to be retried."""
    outages = [f for f in record.faults if f.kind == "webhook-down"]
    return sum(any(f.start <= a.raised_at <= f.end for f in outages) for a in record.alerts)


def markdown(record: SoakRecord, problems: list[str], bounds: Bounds, plot_name: str | None) -> str:
    """The summary: what was injected, what flowed, what the checks found."""
    duration = record.ended - record.started
    statuses = Counter(
        ("no answer, on purpose" if e.deliberate else "no answer")
        if e.status is None
        else f"{e.status // 100}xx"
        for e in record.exchanges
    )
    lines = [
        "# Chaos soak",
        "",
        f"{duration:.0f} s, {len(record.faults)} faults injected."
        + (f" Plot: [{plot_name}]({plot_name})." if plot_name else ""),
        "",
        "## Faults",
        "",
        "| Fault | Target | At (s) | Recovered after (s) |",
        "|---|---|---:|---:|",
    ]
    for f in sorted(record.faults, key=lambda f: f.start):
        lines.append(
            f"| {f.kind} | {f.target} | {f.start - record.started:.1f} | {f.end - f.start:.1f} |"
        )
    lines += ["", "## Traffic", ""]
    figures = {
        "requests": len(record.exchanges),
        "answers": ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items())),
        "batches acknowledged (202)": len(record.accepted),
        "alerts the rules require": len(record.expected_alerts),
        "alerts raised": len(record.alerts),
        "webhook requests received": len(record.deliveries),
        "alerts raised while the webhook receiver was down": held_by_receiver(record),
        **record.notes,
    }
    lines += [f"- {key}: {value}" for key, value in figures.items()]
    lines += [
        "",
        "## Memory",
        "",
        f"Judged: processes that lived at least {bounds.memory_min_lifetime_seconds:.0f} s; the"
        " slope of RSS over the last half of their samples must stay under"
        f" {bounds.memory_slope_bytes_per_minute / 2**20:.1f} MiB/min.",
        "",
        "| Process | Lived (s) | First RSS (MiB) | Last RSS (MiB) | Slope, last half (MiB/min) |",
        "|---|---:|---:|---:|---:|",
    ]
    by_process: dict[str, list[MemorySample]] = defaultdict(list)
    for sample in record.memory:
        by_process[sample.process].append(sample)
    for process, samples in sorted(by_process.items()):
        samples.sort(key=lambda s: s.at)
        lines.append(
            f"| {process} | {samples[-1].at - samples[0].at:.0f}"
            f" | {samples[0].rss_bytes / 2**20:.0f} | {samples[-1].rss_bytes / 2**20:.0f}"
            f" | {memory_slope(samples) / 2**20:.2f} |"
        )
    lines += ["", "## Verdict", ""]
    if problems:
        lines += [f"- {p}" for p in problems]
    else:
        lines.append(
            "No problem found: every acknowledged batch stored and processed once, every"
            " required alert raised once and no other, delivered to every webhook in time and"
            " to every stream subscriber, no 5xx outside the fault windows, no process's memory"
            " still growing."
        )
    return "\n".join(lines) + "\n"
