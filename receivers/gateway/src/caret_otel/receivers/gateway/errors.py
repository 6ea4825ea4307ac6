"""The gateway's one error type, rendered as a JSON body naming the problem.

Every rejection is a :class:`RequestError` (from :mod:`caret_otel.core.errors`, shared
with the OTLP body reader), so every 4xx/5xx the gateway sends has the same shape:
``{"error": <code>, "message": <text>, "field": <where>}``. Messages describe the
input's shape (a field name, a limit), never echo user values.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

from caret_otel.core.errors import RequestError, retry_after

__all__ = ["JSON_MEDIA_TYPE", "RequestError", "error_response", "retry_after"]

JSON_MEDIA_TYPE = "application/json"


def error_response(error: RequestError) -> Response:
    """``error`` as the gateway's JSON error document, with its status and headers."""
    return Response(
        orjson.dumps(error.body()),
        status_code=error.status,
        media_type=JSON_MEDIA_TYPE,
        headers=error.headers,
    )
