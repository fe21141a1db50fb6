"""``python -m bench speech`` end to end at toy scale: every variant runs, and the report renders.

Speed is not asserted (the bench measures it); this keeps the bench from rotting when the
CLI, the upstream's flags or the vendor SDK change under it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import child_env

ROOT = Path(__file__).resolve().parents[2]
TOY = ["--concurrency", "2", "--requests", "4", "--rounds", "1", "--rtf", "0", "--ramp-s", "0"]


def test_every_variant_completes_and_the_report_fills_the_docs(tmp_path: Path) -> None:
    out = tmp_path / "speech.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "speech",
            *TOY,
            "--variants",
            "d",
            "a",
            "a2",
            "b",
            "c",
            "--out",
            str(out),
        ],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = {row["variant"]: row for row in json.loads(out.read_text())["results"]}
    assert sorted(results) == ["a", "a2", "b", "c", "d"]
    assert all(row["errors"] == 0 and row["requests"] == 4 for row in results.values()), results
    # The upstream's own count: the warm pools paid no connect, "no pool" paid one per request.
    assert results["a"]["reuse"] == results["a2"]["reuse"] == 1.0
    assert results["b"]["reuse"] == 0.0
    for plot in ("first-packet.png", "throughput.png"):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    docs = tmp_path / "page.md"
    docs.write_text(
        "intro\n<!-- bench:conditions -->\nold\n<!-- /bench:conditions -->\n"
        "<!-- bench:targets -->\n<!-- /bench:targets -->\n"
        "<!-- bench:tables -->\nold\n<!-- /bench:tables -->\nend\n"
    )
    report = subprocess.run(
        [sys.executable, "-m", "bench.report", str(out), str(tmp_path), "--docs", str(docs)],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    page = docs.read_text()
    assert page.startswith("intro\n") and page.endswith("end\n") and "old" not in page
    assert "**2 concurrent streams**" in page and "| vendor SDK pool | 4 |" in page
    assert "| (a) vs (b) saves at least the connect cost (100 ms) at p50 |" in page


def test_the_voice_suite_runs_every_variant_without_errors() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "voice",
            "--concurrency",
            "1",
            "--requests",
            "2",
            "--policies",
            "--policy-rounds",
            "2",
        ],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    row = next(line for line in run.stdout.splitlines() if line.lstrip().startswith("1 "))
    assert row.rstrip().endswith("| 0"), row  # no errors
    for policy in ("delta", "clause", "sentence"):
        assert any(line.strip().startswith(policy) for line in run.stdout.splitlines()), policy
