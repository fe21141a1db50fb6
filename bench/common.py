"""The generation and tracing suites' samples, closed loop and summary (the speech suite's are
in :mod:`bench.loadgen` and :mod:`bench.stats`, which also has the one percentile function)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.stats import percentile

T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    first_packet_ms: float
    """First audio packet or first token, client-side; -1 if none arrived."""
    ok: bool


def upstream_stats(http_base: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{http_base}/_dev/stats", timeout=10) as reply:
        stats: dict[str, int] = json.load(reply)
        return stats


async def closed_loop(
    concurrency: int,
    requests: int,
    texts: Sequence[str],
    run_one: Callable[[int, str], Awaitable[T]],
) -> list[T]:
    """``concurrency`` workers, each running tasks back to back until ``requests`` are done."""
    samples: list[T] = []
    counter = iter(range(requests))

    async def worker(slot: int) -> None:
        for index in counter:
            samples.append(await run_one(slot, texts[index % len(texts)]))

    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    return samples


def summarize(samples: list[Sample]) -> tuple[float, float, float]:
    good = [s.first_packet_ms for s in samples if s.ok and s.first_packet_ms >= 0]
    error_rate = 1 - len(good) / len(samples)
    return percentile(good, 50), percentile(good, 99), error_rate
