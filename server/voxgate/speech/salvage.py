"""Salvage instead of reconnect: a task abandoned by its caller is read to its end in the background.

When a caller cancels, its deadline passes or its writes stall mid-task, closing the upstream
socket would cost a reconnect for every such call: a thousand cancels became a thousand
handshakes (the vendor's "reconnect spike exceeding the account's limits"). Instead the
:class:`Salvager` keeps the lease in a background task that reads the task to
``task-finished``, discarding its audio (:meth:`voxgate.speech.connection.Synthesizer.salvage`),
and then gives the connection back to the pool clean. It is closed instead when the task had not
reached finish-task yet, when ``timeout_s`` passes first, when ``max_in_flight`` salvages already
run, or when the salvage fails in any way.
"""

from __future__ import annotations

import asyncio
import logging

from opentelemetry import trace

from voxgate.observability import names
from voxgate.pool import Lease, Pool
from voxgate.rpc.admission import Overload
from voxgate.speech.connection import Synthesizer
from voxgate.speech.protocol import SynthesisTask, TaskState

log = logging.getLogger(__name__)


class Salvager:
    """Adopts the leases of abandoned tasks; :meth:`close` cancels what still runs."""

    def __init__(
        self, pool: Pool[Synthesizer], *, timeout_s: float, max_in_flight: int, overload: Overload
    ) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._max_in_flight = max_in_flight
        self._overload = overload
        self._tasks: set[asyncio.Task[None]] = set()

    def adopt(self, lease: Lease[Synthesizer], task: SynthesisTask) -> bool:
        """Take over ``lease`` (whose ``task`` its caller abandoned) if it can be salvaged.

        True: the salvager releases the lease. False: the caller releases it (and it is closed).
        Synchronous, so it can run in a handler that is being cancelled.
        """
        reason = self._refusal(lease, task)
        if reason is not None:
            self._overload.count("salvage_closed", reason)
            return False
        self._overload.salvages_in_flight += 1
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(names.OVERLOAD_PREFIX + "salvage", "started")
        salvage = asyncio.get_running_loop().create_task(self._salvage(lease, task))
        self._tasks.add(salvage)
        salvage.add_done_callback(self._tasks.discard)
        return True

    def _refusal(self, lease: Lease[Synthesizer], task: SynthesisTask) -> str | None:
        if self._timeout_s <= 0:
            return "off"
        if task.state is not TaskState.FINISHING:
            return f"task {task.state.value}"  # not started, already ended, or failed
        if len(self._tasks) >= self._max_in_flight:
            return "too many salvages"
        return None

    async def _salvage(self, lease: Lease[Synthesizer], task: SynthesisTask) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                discarded = await lease.conn.salvage(task)
        except TimeoutError:
            self._overload.count("salvage_closed", "timeout")
            log.info(
                "salvage of task %s took over %.3gs: closing its connection", task.task_id, self._timeout_s
            )
        except Exception as exc:
            self._overload.count("salvage_closed", "failed")
            log.info("salvage of task %s failed (%s): closing its connection", task.task_id, exc)
        else:
            lease.mark_reusable()
            self._overload.count("salvaged")
            log.debug("salvaged task %s (%d audio bytes discarded)", task.task_id, discarded)
        finally:
            self._overload.salvages_in_flight -= 1
            self._pool.release(lease)

    async def close(self) -> None:
        """Cancel the salvages still running (their connections are closed) and wait for them."""
        tasks = set(self._tasks)
        for salvage in tasks:
            salvage.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
