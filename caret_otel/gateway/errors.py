"""The one error type of the request path, rendered as a JSON body naming the problem.

Every rejection goes through :class:`RequestError`, so every 4xx/5xx the gateway sends
has the same shape: ``{"error": <code>, "message": <text>, "field": <where>}``. Messages
describe the input's shape (a field name, a limit), never echo user values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import orjson
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"


class RequestError(Exception):
    """A request the gateway refuses, with its HTTP status and a clear reason."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            media_type=JSON_MEDIA_TYPE,
            headers=self.headers,
        )

    @classmethod
    def bad_request(cls, code: str, message: str, *, field: str | None = None) -> RequestError:
        return cls(400, code, message, field=field)

    @classmethod
    def unauthorized(cls, message: str) -> RequestError:
        return cls(
            401,
            "unauthorized",
            message,
            field="Authorization",
            headers={"WWW-Authenticate": 'Bearer realm="caret-telemetry"'},
        )

    @classmethod
    def forbidden(cls, message: str) -> RequestError:
        return cls(403, "forbidden", message, field="Authorization")

    @classmethod
    def too_large(cls, message: str, *, field: str) -> RequestError:
        return cls(413, "too_large", message, field=field)

    @classmethod
    def unsupported_media_type(cls, message: str, *, field: str) -> RequestError:
        return cls(415, "unsupported_media_type", message, field=field)

    @classmethod
    def unprocessable(cls, message: str, *, field: str) -> RequestError:
        return cls(422, "unprocessable", message, field=field)

    @classmethod
    def too_many_requests(cls, message: str, retry_after_s: float) -> RequestError:
        return cls(
            429, "too_many_requests", message, headers={"Retry-After": retry_after(retry_after_s)}
        )

    @classmethod
    def unavailable(cls, message: str, retry_after_s: float | None) -> RequestError:
        headers = {} if retry_after_s is None else {"Retry-After": retry_after(retry_after_s)}
        return cls(503, "unavailable", message, headers=headers)


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1 (0 would invite a hot retry loop)."""
    return str(max(1, math.ceil(seconds)))
