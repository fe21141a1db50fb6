"""Server events of the CosyVoice duplex protocol, as JSON text frames (no I/O).

Shapes follow docs/protocol.md#frames: every event has ``header.task_id``, ``header.event`` and
``header.attributes``; ``result-generated`` carries ``payload.output.type`` =
sentence-begin | sentence-synthesis | sentence-end. The caller sends each string as one
text frame; a sentence-synthesis frame must be followed immediately by its binary frame.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from voxgate.speech.protocol import (
    EVENT_RESULT_GENERATED,
    EVENT_TASK_FAILED,
    EVENT_TASK_FINISHED,
    EVENT_TASK_STARTED,
    SENTENCE_END,
)


def _dumps(message: dict[str, Any]) -> str:
    # UTF-8 as the vendor's documented examples show; the SDK json.loads every text frame.
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _header(task_id: str, event: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"task_id": task_id, "event": event, "attributes": attributes or {}}


def task_started(task_id: str) -> str:
    return _dumps({"header": _header(task_id, EVENT_TASK_STARTED), "payload": {}})


def sentence(
    task_id: str,
    *,
    index: int,
    kind: str,
    original_text: str | None = None,
    characters: int | None = None,
) -> str:
    """A result-generated event. sentence-begin/-end carry ``original_text``; sentence-end
    also ``usage.characters``, cumulative for the task (docs/protocol.md#result-generated)."""
    output: dict[str, Any] = {"sentence": {"index": index, "words": []}, "type": kind}
    if original_text is not None:
        output["original_text"] = original_text
    payload: dict[str, Any] = {"output": output}
    if kind == SENTENCE_END and characters is not None:
        payload["usage"] = {"characters": characters}
    return _dumps({"header": _header(task_id, EVENT_RESULT_GENERATED), "payload": payload})


def task_finished(task_id: str, characters: int) -> str:
    """task-finished with a fresh ``attributes.request_uuid`` and the task's character count."""
    return _dumps(
        {
            "header": _header(task_id, EVENT_TASK_FINISHED, {"request_uuid": str(uuid.uuid4())}),
            "payload": {"output": {"sentence": {"words": []}}, "usage": {"characters": characters}},
        }
    )


def task_failed(task_id: str, code: str, message: str) -> str:
    """task-failed; the sender must close the connection afterwards (docs/protocol.md#task-failed)."""
    header: dict[str, Any] = {
        "task_id": task_id,
        "event": EVENT_TASK_FAILED,
        "error_code": code,
        "error_message": message,
        "attributes": {},
    }
    return _dumps({"header": header, "payload": {}})
