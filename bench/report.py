"""Tables and plots from a speech run's JSON: ``python -m bench.report RESULTS.json OUTDIR``.

Writes ``first-packet.png`` (p50 and p99 vs concurrency, one line per variant) and
``throughput.png`` (streams/s, audio-seconds/s and CPU per stream vs concurrency) into
OUTDIR, and prints the Markdown tables that ``docs/benchmarks.md`` quotes.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.speech import VARIANTS
from bench.stats import LevelResult

STYLES = {"a": "o-", "a2": "s-", "b": "^--", "c": "D-.", "d": "x:"}


def load(path: Path) -> tuple[dict[str, Any], list[LevelResult]]:
    payload: dict[str, Any] = json.loads(path.read_text())
    return payload, [LevelResult.from_json(item) for item in payload["results"]]


def by_variant(results: Sequence[LevelResult]) -> dict[str, list[LevelResult]]:
    grouped: dict[str, list[LevelResult]] = {}
    for result in sorted(results, key=lambda r: r.concurrency):
        grouped.setdefault(result.variant, []).append(result)
    return {variant: grouped[variant] for variant in VARIANTS if variant in grouped}


def plot(results: Sequence[LevelResult], outdir: Path, subtitle: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    grouped = by_variant(results)
    written = []

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for axis, field, title in ((axes[0], "p50_ms", "p50"), (axes[1], "p99_ms", "p99")):
        for variant, rows in grouped.items():
            xs = [r.concurrency for r in rows]
            axis.plot(xs, [getattr(r, field) for r in rows], STYLES[variant], label=VARIANTS[variant])
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("concurrent streams")
        axis.set_title(f"first-packet delay, {title}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms (client-side)")
    axes[0].legend()
    figure.suptitle(subtitle, fontsize=9)
    figure.tight_layout()
    written.append(outdir / "first-packet.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    panels = (
        ("streams_per_s", "completed streams / s"),
        ("audio_s_per_s", "audio seconds / s"),
        ("cpu_ms_per_stream", "CPU ms per stream (client + gateway)"),
    )
    for axis, (field, title) in zip(axes, panels, strict=True):
        for variant, rows in grouped.items():
            xs = [r.concurrency for r in rows]
            axis.plot(xs, [getattr(r, field) for r in rows], STYLES[variant], label=VARIANTS[variant])
        axis.set_xscale("log")
        axis.set_xlabel("concurrent streams")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[0].legend()
    figure.suptitle(subtitle, fontsize=9)
    figure.tight_layout()
    written.append(outdir / "throughput.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)
    return written


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def tables(results: Sequence[LevelResult]) -> str:
    """One Markdown table per concurrency level, variants as rows."""
    lines = []
    for concurrency in sorted({r.concurrency for r in results}):
        lines += [
            f"**{concurrency} concurrent stream{'s' if concurrency > 1 else ''}**",
            "",
            "| variant | requests | first packet p50 / p99 ms | streams/s | audio s/s | errors"
            " | CPU ms/stream (client + gateway) | upstream CPU ms/stream | peak RSS MiB (client / gateway)"
            " | reuse (upstream) | voxgate: reused, pool wait p99 ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for result in sorted((r for r in results if r.concurrency == concurrency), key=_order):
            cpu = f"{result.cpu_ms_per_stream:.1f}"
            rss = f"{result.client_rss_mib:.0f}"
            if result.gateway_rss_mib:
                cpu += f" ({result.client_cpu_ms_per_stream:.1f} + {result.gateway_cpu_ms_per_stream:.1f})"
                rss += f" / {result.gateway_rss_mib:.0f}"
            errors = f"{result.error_rate:.2%}"
            if result.error_kinds:
                errors += " (" + ", ".join(f"{k} {n}" for k, n in sorted(result.error_kinds.items())) + ")"
            first_packet = f"{_ms(result.p50_ms)} / {_ms(result.p99_ms)}"
            lines.append(
                f"| {VARIANTS[result.variant]} | {result.requests} | {first_packet}"
                f" | {result.streams_per_s:.1f} | {result.audio_s_per_s:.1f} | {errors} | {cpu}"
                f" | {result.upstream_cpu_ms_per_stream:.1f} | {rss}"
                f" | {result.reuse:.1%} | {_voxgate_view(result)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _voxgate_view(result: LevelResult) -> str:
    if math.isnan(result.voxgate_reused):
        return ""
    return f"{result.voxgate_reused:.1%}, {result.pool_wait_p99_ms:.1f}"


def _order(result: LevelResult) -> int:
    return list(VARIANTS).index(result.variant)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    payload, results = load(args.results)
    subtitle = f"{payload['machine']}; upstream: {payload['profile']}"
    for path in plot(results, args.outdir, subtitle):
        print(f"wrote {path}")
    print()
    print(tables(results))


if __name__ == "__main__":
    main()
