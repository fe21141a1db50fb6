"""Tables, target verdicts and plots from a speech run's JSON.

``python -m bench.report RESULTS.json OUTDIR [--docs docs/benchmarks.md]`` writes
``first-packet.png`` (p50 and p99 vs concurrency, one line per variant) and
``throughput.png`` (streams/s, audio-seconds/s and CPU per stream vs concurrency) into
OUTDIR and prints the Markdown; with ``--docs`` it also replaces the generated blocks of
that file (between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``), so the numbers
in the prose's tables always come from one run.
"""

from __future__ import annotations

import argparse
import json
import math
import re
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
            " | reuse (upstream) | voxgate's counters: reuse / peak utilization / pool wait p99 ms |",
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
    if math.isnan(result.pool_reuse_ratio):
        return ""
    return (
        f"{result.pool_reuse_ratio:.1%} / {result.pool_peak_utilization:.0%} / {result.pool_wait_p99_ms:.1f}"
    )


def _order(result: LevelResult) -> int:
    return list(VARIANTS).index(result.variant)


def _cell(results: Sequence[LevelResult], variant: str, concurrency: int) -> LevelResult | None:
    return next((r for r in results if r.variant == variant and r.concurrency == concurrency), None)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def targets(payload: dict[str, Any], results: Sequence[LevelResult]) -> str:
    """The issue's targets, each with the measured numbers and a verdict."""
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    a100, d100 = _cell(results, "a", 100), _cell(results, "d", 100)
    if a100 and d100:
        added50, added99 = a100.p50_ms - d100.p50_ms, a100.p99_ms - d100.p99_ms
        lines.append(
            f"| added first-packet delay over (d) at 100 streams: p50 <= 2 ms, p99 <= 10 ms"
            f" | {added50:+.1f} ms / {added99:+.1f} ms | {_verdict(added50 <= 2 and added99 <= 10)} |"
        )
    a1k, d1k = _cell(results, "a", 1000), _cell(results, "d", 1000)
    if a1k and d1k:
        added99 = a1k.p99_ms - d1k.p99_ms
        lines.append(
            f"| 1000 streams: error rate < 0.1 %, added p99 <= 50 ms | {a1k.error_rate:.2%},"
            f" {added99:+.0f} ms | errors {_verdict(a1k.error_rate < 0.001)}, p99 {_verdict(added99 <= 50)} |"
        )
    for concurrency in sorted({r.concurrency for r in results if r.concurrency >= 10}):
        a, c = _cell(results, "a", concurrency), _cell(results, "c", concurrency)
        if a and c:
            lines.append(
                f"| (a) beats (c) at {concurrency}: p99, CPU per stream"
                f" | p99 {a.p99_ms:.0f} vs {c.p99_ms:.0f} ms;"
                f" CPU {a.cpu_ms_per_stream:.1f} vs {c.cpu_ms_per_stream:.1f} ms"
                f" (voxgate alone {a.gateway_cpu_ms_per_stream:.1f}) | p99 {_verdict(a.p99_ms < c.p99_ms)},"
                f" CPU {_verdict(a.cpu_ms_per_stream < c.cpu_ms_per_stream)} |"
            )
    connect_ms = float(payload.get("connect_delay_ms", 0))
    savings = [
        (r.concurrency, b.p50_ms - r.p50_ms)
        for r in results
        if r.variant == "a" and (b := _cell(results, "b", r.concurrency)) is not None
    ]
    if savings:
        shown = ", ".join(f"{saved:.0f} ms at {concurrency}" for concurrency, saved in savings)
        ok = all(saved >= connect_ms for _, saved in savings)
        lines.append(
            f"| (a) vs (b) saves at least the connect cost ({connect_ms:.0f} ms) at p50"
            f" | {shown} | {_verdict(ok)} |"
        )
    reuse = [r.reuse for r in results if r.variant in ("a", "a2")]
    if reuse:
        lines.append(
            f"| reuse >= 99 % in steady state | lowest {min(reuse):.1%} (a, a2)"
            f" | {_verdict(min(reuse) >= 0.99)} |"
        )
    idle = payload.get("idle_rss_kib_per_connection", {})
    if "a" in idle:
        lines.append(
            f"| <= 100 KiB RSS per idle warm connection | {idle['a']:.1f} KiB"
            f" (vendor SDK {idle.get('c', math.nan):.1f},"
            f" raw websockets {idle.get('d', math.nan):.1f}) | {_verdict(idle['a'] <= 100)} |"
        )
    return "\n".join(lines)


def conditions(payload: dict[str, Any]) -> str:
    load_start = " ".join(f"{x:.2f}" for x in payload.get("load_average_at_start", []))
    load_end = " ".join(f"{x:.2f}" for x in payload.get("load_average_at_end", []))
    return (
        f"- command: `{payload.get('command', 'python -m bench --full')}`,"
        f" started {payload.get('started_utc', '?')},"
        f" {payload.get('duration_s', 0) / 60:.0f} min\n"
        f"- machine: {payload['machine']} ({payload.get('cpu', '?')})\n"
        f"- load average (1/5/15 min) at start: {load_start}; at the end: {load_end}\n"
        f"- upstream profile: {payload['profile']}"
    )


def headline(results: Sequence[LevelResult]) -> str:
    """The README's summary: what voxgate adds, saves, and does against the SDK pool, per level."""
    lines = [
        "| streams | voxgate adds over direct sockets (p50 / p99)"
        " | the warm pool saves vs connect-per-request (p50)"
        " | p99: voxgate vs the vendor SDK pool | errors: voxgate vs SDK pool |",
        "|---|---|---|---|---|",
    ]
    for concurrency in sorted({r.concurrency for r in results}):
        a, b, c, d = (_cell(results, v, concurrency) for v in ("a", "b", "c", "d"))
        if not (a and b and c and d):
            continue
        lines.append(
            f"| {concurrency} | {a.p50_ms - d.p50_ms:+.1f} / {a.p99_ms - d.p99_ms:+.1f} ms"
            f" | {b.p50_ms - a.p50_ms:.0f} ms ({b.p50_ms / a.p50_ms:.2f}x)"
            f" | {a.p99_ms:.0f} vs {c.p99_ms:.0f} ms"
            f" | {a.error_rate:.1%} vs {c.error_rate:.1%} |"
        )
    return "\n".join(lines)


def update_docs(path: Path, blocks: dict[str, str]) -> None:
    """Replace every ``<!-- bench:NAME -->...<!-- /bench:NAME -->`` block of ``path`` named in ``blocks``."""
    text = path.read_text()
    replaced = 0
    for name, content in blocks.items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
        replacement = "\\g<1>" + content.replace("\\", "\\\\") + "\n\\g<2>"
        text, count = pattern.subn(replacement, text)
        replaced += count
    if not replaced:
        raise SystemExit(f"{path}: no <!-- bench:NAME --> block to refresh")
    path.write_text(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument(
        "--docs",
        type=Path,
        action="append",
        default=[],
        help="refresh the generated blocks of this Markdown file",
    )
    args = parser.parse_args(argv)
    payload, results = load(args.results)
    subtitle = f"{payload['machine']}; upstream: {payload['profile']}"
    for path in plot(results, args.outdir, subtitle):
        print(f"wrote {path}")
    blocks = {
        "conditions": conditions(payload),
        "targets": targets(payload, results),
        "tables": tables(results),
        "headline": headline(results),
    }
    for content in blocks.values():
        print()
        print(content)
    for path in args.docs:
        update_docs(path, blocks)
        print(f"updated {path}")


if __name__ == "__main__":
    main()
