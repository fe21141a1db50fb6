"""``voxgate-go load``, the load generator, against a real voxgate: the calls it reports are the
calls the server served, without errors, in both of its modes; failures are counted by status."""

from __future__ import annotations

import json
from typing import Any

import grpc

from polyglot import built
from voxgate.stats.v1 import stats_pb2, stats_pb2_grpc


async def leases(address: str) -> int:
    """Connections the server's speech pool lent so far: one per Synthesize that reached the pool."""
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await stats_pb2_grpc.StatsServiceStub(channel).GetStats(
            stats_pb2.GetStatsRequest(), timeout=10
        )
    (pool,) = reply.pools
    return int(pool.leases)


def check_report(report: dict[str, Any], calls: int) -> None:
    assert (report["requests"], report["ok"], report["errors"]) == (calls, calls, 0)
    assert report["statuses"] == {"OK": calls}
    assert report["audio_bytes"] > 0
    assert sum(bucket["count"] for bucket in report["first_packet_histogram"]) == calls
    for name in ("first_packet_ms", "total_ms"):
        stats = report[name]
        assert (
            0 < stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p95"] <= stats["p99"] <= stats["max"]
        )
    assert report["first_packet_ms"]["p50"] <= report["total_ms"]["p50"]


async def test_closed_loop_makes_exactly_the_requested_calls_without_errors(served: str) -> None:
    go = built("go")
    before = await leases(served)
    done = await go.run(
        "load", "--server", served, "--concurrency", "4", "--requests", "30", "--json",
        "--text", "Hello.", "--text", "A second, longer sentence for the load test.",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    check_report(report, 30)
    assert (report["mode"], report["concurrency"]) == ("closed", 4)
    assert await leases(served) - before == 30


async def test_open_loop_starts_calls_on_schedule_for_the_duration(served: str) -> None:
    go = built("go")
    before = await leases(served)
    done = await go.run("load", "--server", served, "--rate", "40", "--duration", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # Calls start at 0, 25, 50, ... 975 ms: 40 in the second (one may miss it on a busy machine).
    assert 39 <= report["requests"] <= 40
    check_report(report, report["requests"])
    assert report["mode"] == "open" and report["rate_per_second"] == 40
    assert await leases(served) - before == report["requests"]


async def test_the_text_report_has_percentiles_statuses_and_a_histogram(served: str) -> None:
    done = await built("go").run("load", "--server", served, "--requests", "12", "--concurrency", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("  calls:       12 (12 OK, 0 failed) in ")
    assert any(line.startswith("  first packet  min ") and " p99 " in line for line in lines)
    assert any(line.startswith("  total         min ") for line in lines)
    assert "  OK                   12" in lines
    histogram = lines[lines.index("First packet histogram (ms):") + 1 :]
    assert len(histogram) in (1, 10)
    assert sum(int(line.split("[")[1].split("]")[0]) for line in histogram) == 12


async def test_failed_calls_are_counted_by_status_and_fail_the_run(served: str) -> None:
    done = await built("go").run("load", "--server", served, "--requests", "5", "--text", " ", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert (report["requests"], report["ok"], report["errors"]) == (5, 0, 5)
    assert report["statuses"] == {"INVALID_ARGUMENT": 5}


async def test_contradicting_flags_are_a_usage_error(served: str) -> None:
    done = await built("go").run("load", "--server", served, "--rate", "5", "--concurrency", "2")
    assert done.returncode == 2
    assert "argument --rate: not allowed with argument --concurrency" in done.stderr


async def test_the_bench_protocol_reports_every_call_as_a_sample(served: str) -> None:
    """`python -m bench speech --loadgen go` drives it: ready, a line, then one row per call."""
    import asyncio

    from bench.stats import Sample

    from polyglot import BUILT

    proc = await asyncio.create_subprocess_exec(
        str(BUILT["go"]), "load", "--bench", "--server", served, "--requests", "8", "--concurrency", "2",
        "--format", "pcm", "--sample-rate", "16000",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"  # after its warm-up calls
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    (line,) = stdout.decode().splitlines()
    result = json.loads(line.removeprefix("result "))
    samples = [Sample.from_row(row) for row in result["samples"]]
    assert len(samples) == 8 and all(sample.ok for sample in samples)
    assert all(0 < s.first_packet_ms <= s.total_ms and s.pool_wait_ms >= 0 and s.hop_ms >= 0 for s in samples)
    assert result["wall_s"] > 0 and result["cpu_s"] > 0 and result["maxrss_kib"] > 0
