"""Bearer-key check shared by every endpoint of the local upstream.

The vendor rejects a bad key before the WebSocket upgrade with HTTP 401
(docs/protocol.md#handshake-and-headers); the body has the DashScope error shape
(docs/protocol.md#error-bodies). The key itself is never logged.
"""

from __future__ import annotations

import hmac
import uuid

from aiohttp import web

CODE_INVALID_API_KEY = "InvalidApiKey"
MESSAGE_INVALID_API_KEY = "Invalid API-key provided."


def is_authorized(request: web.BaseRequest, api_key: str | None) -> bool:
    """True if ``Authorization`` is ``Bearer <key>`` (scheme in any case: 2.x sends
    ``Bearer``, 1.23.9 and the docs ``bearer``; docs/protocol.md#handshake-and-headers).
    ``api_key=None`` accepts any non-empty key."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    if api_key is None:
        return True
    return hmac.compare_digest(token.encode(), api_key.encode())


ERROR_BODIES = {
    400: (
        "InvalidParameter",
        "Required parameter(s) missing or invalid, please check the request parameters.",
    ),
    401: (CODE_INVALID_API_KEY, MESSAGE_INVALID_API_KEY),
    403: ("AccessDenied", "Access denied."),
    429: ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    500: (
        "InternalError",
        "An internal error has occured, please try again later or contact service support.",
    ),
}
"""DashScope's code and message per HTTP status (docs/protocol.md#error-codes), for injected errors."""


def error_body(status: int) -> tuple[str, str]:
    """Code and message of an injected HTTP error with ``status``."""
    return ERROR_BODIES.get(status, ("ServiceUnavailable", f"local upstream: injected HTTP {status}"))


def error_response(status: int, code: str, message: str) -> web.Response:
    """An HTTP error in DashScope's shape: ``{"request_id", "code", "message"}``."""
    return web.json_response(
        {"request_id": str(uuid.uuid4()), "code": code, "message": message}, status=status
    )


def unauthorized() -> web.Response:
    return error_response(401, CODE_INVALID_API_KEY, MESSAGE_INVALID_API_KEY)
