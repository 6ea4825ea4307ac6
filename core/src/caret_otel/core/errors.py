"""One exception hierarchy for every part of caret-otel (as httpx has one).

Catch :class:`CaretOtelError` to handle anything caret-otel raises on purpose; the CLI
does exactly that and prints ``error: <message>`` instead of a traceback. The concrete
classes also derive from the built-in they always were (``ValueError``,
``RuntimeError``, ...), so existing ``except`` clauses keep working.

    CaretOtelError
    ├── ConfigurationError     a setting, environment variable, key or file is unusable
    ├── InputError             data handed to us (a file, an event, a request) is unusable
    │   └── RequestError       an HTTP request refused, with status, code and field
    └── ServiceError           a component we run or talk to failed or is missing
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class CaretOtelError(Exception):
    """Base class of every error caret-otel raises on purpose."""


class ConfigurationError(CaretOtelError, ValueError):
    """A setting, environment variable, key or file cannot be used as given."""


class InputError(CaretOtelError, ValueError):
    """Data handed to caret-otel (a file, an event, a request body) cannot be used."""


class ServiceError(CaretOtelError, RuntimeError):
    """A component caret-otel runs or talks to failed, is missing or is not ready."""


class RequestError(InputError):
    """An HTTP request refused, with its status and a reason naming the field.

    Rendered by each server in its own format: the gateway as
    ``{"error": <code>, "message": <text>, "field": <where>}``, the OTLP endpoints as a
    ``google.rpc.Status``. Messages describe the input's shape (a field name, a limit,
    an expected type), never echo its values.
    """

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
        """The JSON error document: error code, message and, when known, the field."""
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body

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
