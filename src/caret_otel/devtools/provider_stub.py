"""A local HTTP server that answers like the Anthropic and OpenAI APIs.

It speaks the real wire formats - JSON bodies and server-sent events, including the
error envelopes - on a loopback port, so the GenAI instrumentation can be exercised
end to end without calling (or paying) a provider: by the tests, by
``bench/sdk_httpx.py`` and by anyone trying the SDK locally.

Each request chooses its behaviour with headers:

============================  ===========================================================
``x-stub-scenario``           ``ok`` (default); ``error-400``/``error-429``/``error-500``
                              (provider error body with that status); ``slow`` (wait
                              ``x-stub-delay`` seconds before answering); ``stream-error``
                              (a provider error event mid-stream); ``stream-stall`` (stop
                              sending mid-stream for ``x-stub-delay`` seconds);
                              ``bad-gzip`` (a stream labelled gzip but sent plain)
``x-stub-reply``              the assistant text, percent-encoded UTF-8 (headers are
                              ASCII; default ``Hello from the stub``)
``x-stub-usage``              ``input,output,cache_read,cache_creation`` token counts
                              (default ``11,7,5,3``; see :class:`StubUsage`)
``x-stub-gzip``               ``1``: gzip the body (streamed bodies too)
============================  ===========================================================

The response model is the request model with :data:`RESPONSE_MODEL_SUFFIX` appended,
as providers answer an alias with a dated snapshot name.

Run one::

    with ProviderStub() as stub:
        httpx.post(f"{stub.url}/v1/messages", json={...})
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

RESPONSE_MODEL_SUFFIX = "-20250514"
DEFAULT_REPLY = "Hello from the stub"
_ids = itertools.count(1)


@dataclass(frozen=True)
class StubUsage:
    """Token counts the stub reports, in Anthropic's terms.

    ``input`` excludes the cache reads and writes (as Anthropic reports it). On the
    OpenAI APIs the stub reports ``input + cache_read`` as prompt/input tokens, with
    ``cache_read`` as the cached part (OpenAI has no cache-write count).
    """

    input: int = 11
    output: int = 7
    cache_read: int = 5
    cache_creation: int = 3

    @classmethod
    def from_header(cls, value: str | None) -> StubUsage:
        if not value:
            return cls()
        numbers = [int(part) for part in value.split(",")]
        return cls(*numbers)

    def header(self) -> str:
        return f"{self.input},{self.output},{self.cache_read},{self.cache_creation}"


@dataclass(frozen=True)
class _Ask:
    model: str
    stream: bool
    include_usage: bool
    scenario: str
    reply: str
    usage: StubUsage
    delay: float
    gzip: bool

    @property
    def response_model(self) -> str:
        return self.model + RESPONSE_MODEL_SUFFIX

    @property
    def words(self) -> list[str]:
        parts = self.reply.split(" ")
        return [part if i == 0 else " " + part for i, part in enumerate(parts)]


async def _ask(request: Request) -> _Ask:
    body = orjson.loads(await request.body())
    headers = request.headers
    stream_options = body.get("stream_options") or {}
    return _Ask(
        model=str(body.get("model", "unknown-model")),
        stream=bool(body.get("stream", False)),
        include_usage=bool(stream_options.get("include_usage", False)),
        scenario=headers.get("x-stub-scenario", "ok"),
        reply=unquote(headers.get("x-stub-reply", DEFAULT_REPLY)),
        usage=StubUsage.from_header(headers.get("x-stub-usage")),
        delay=float(headers.get("x-stub-delay", "2")),
        gzip=headers.get("x-stub-gzip") == "1",
    )


def _sse(event: str | None, data: Any) -> bytes:
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"


def _json(ask: _Ask, body: Any, status: int = 200) -> Response:
    if not ask.gzip:
        return JSONResponse(body, status_code=status)
    compressor = zlib.compressobj(wbits=31)
    data = compressor.compress(orjson.dumps(body)) + compressor.flush()
    return Response(
        data,
        status_code=status,
        media_type="application/json",
        headers={"content-encoding": "gzip"},
    )


def _stream(ask: _Ask, events: AsyncIterator[bytes]) -> StreamingResponse:
    headers = {"cache-control": "no-cache"}
    if ask.scenario == "bad-gzip":  # a broken intermediary: labelled gzip, sent plain
        headers["content-encoding"] = "gzip"
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    if not ask.gzip:
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    async def compressed() -> AsyncIterator[bytes]:
        compressor = zlib.compressobj(wbits=31)
        async for event in events:
            yield compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH)
        yield compressor.flush()

    headers["content-encoding"] = "gzip"
    return StreamingResponse(compressed(), media_type="text/event-stream", headers=headers)


_ERROR_STATUS = {"error-400": 400, "error-429": 429, "error-500": 500}
_ErrorEnvelope = Callable[[str, str], dict[str, Any]]  # (provider error type, message) -> body


async def _ask_or_refuse(
    request: Request, error_types: dict[int, str], envelope: _ErrorEnvelope
) -> tuple[_Ask, Response | None]:
    """What every endpoint does first: read the ask, honour ``slow`` and ``error-*``.

    The response is the provider's error answer when the scenario asks for one.
    """
    ask = await _ask(request)
    if ask.scenario == "slow":
        await asyncio.sleep(ask.delay)
    if ask.scenario not in _ERROR_STATUS:
        return ask, None
    status = _ERROR_STATUS[ask.scenario]
    # Real error messages can quote the request; the instrumentation must not keep them.
    return ask, _json(ask, envelope(error_types[status], f"rejected: {ask.reply}"), status)


# --- Anthropic Messages ------------------------------------------------------------------


def _anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 429: "rate_limit_error", 500: "api_error"}


def _anthropic_usage(usage: StubUsage, output: int) -> dict[str, int]:
    return {
        "input_tokens": usage.input,
        "cache_creation_input_tokens": usage.cache_creation,
        "cache_read_input_tokens": usage.cache_read,
        "output_tokens": output,
    }


async def _anthropic_events(ask: _Ask, message_id: str) -> AsyncIterator[bytes]:
    yield _sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": ask.response_model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _anthropic_usage(ask.usage, 1),
            },
        },
    )
    yield _sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    yield _sse("ping", {"type": "ping"})
    for number, word in enumerate(ask.words):
        if number == 1 and ask.scenario == "stream-error":
            yield _sse("error", _anthropic_error("overloaded_error", "Overloaded"))
            return
        if number == 1 and ask.scenario == "stream-stall":
            await asyncio.sleep(ask.delay)
        yield _sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": word},
            },
        )
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": ask.usage.output},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


async def anthropic_messages(request: Request) -> Response:
    ask, refusal = await _ask_or_refuse(request, _ANTHROPIC_ERROR_TYPES, _anthropic_error)
    if refusal is not None:
        return refusal
    message_id = f"msg_stub_{next(_ids):06d}"
    if ask.stream:
        return _stream(ask, _anthropic_events(ask, message_id))
    return _json(
        ask,
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": ask.response_model,
            "content": [{"type": "text", "text": ask.reply}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _anthropic_usage(ask.usage, ask.usage.output),
        },
    )


# --- OpenAI Chat Completions -------------------------------------------------------------


def _openai_error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
}


def _openai_chat_usage(usage: StubUsage) -> dict[str, Any]:
    prompt = usage.input + usage.cache_read
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
    }


async def _chat_events(ask: _Ask, completion_id: str) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": ask.response_model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    yield _sse(None, chunk({"role": "assistant", "content": ""}, None))
    for number, word in enumerate(ask.words):
        if number == 1 and ask.scenario == "stream-error":
            yield _sse(None, _openai_error("server_error", "The server had an error"))
            return
        if number == 1 and ask.scenario == "stream-stall":
            await asyncio.sleep(ask.delay)
        yield _sse(None, chunk({"content": word}, None))
    yield _sse(None, chunk({}, "stop"))
    if ask.include_usage:
        usage_chunk = chunk({}, None)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = _openai_chat_usage(ask.usage)
        yield _sse(None, usage_chunk)
    yield _sse(None, b"[DONE]")


async def openai_chat_completions(request: Request) -> Response:
    ask, refusal = await _ask_or_refuse(request, _OPENAI_ERROR_TYPES, _openai_error)
    if refusal is not None:
        return refusal
    completion_id = f"chatcmpl-stub{next(_ids):06d}"
    if ask.stream:
        return _stream(ask, _chat_events(ask, completion_id))
    return _json(
        ask,
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ask.response_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ask.reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": _openai_chat_usage(ask.usage),
        },
    )


# --- OpenAI Responses --------------------------------------------------------------------


def _responses_object(ask: _Ask, response_id: str, status: str, text: str) -> dict[str, Any]:
    done = status == "completed"
    usage = ask.usage
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": ask.response_model,
        "output": (
            [
                {
                    "type": "message",
                    "id": "msg_" + response_id,
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ]
            if done
            else []
        ),
        "usage": (
            {
                "input_tokens": usage.input + usage.cache_read,
                "input_tokens_details": {"cached_tokens": usage.cache_read},
                "output_tokens": usage.output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.input + usage.cache_read + usage.output,
            }
            if done
            else None
        ),
    }


async def _responses_events(ask: _Ask, response_id: str) -> AsyncIterator[bytes]:
    sequence = itertools.count()
    in_progress = _responses_object(ask, response_id, "in_progress", "")
    for event in ("response.created", "response.in_progress"):
        yield _sse(
            event, {"type": event, "sequence_number": next(sequence), "response": in_progress}
        )
    for number, word in enumerate(ask.words):
        if number == 1 and ask.scenario == "stream-error":
            failed = _responses_object(ask, response_id, "failed", "")
            failed["error"] = {"code": "server_error", "message": "The server had an error"}
            yield _sse(
                "response.failed",
                {"type": "response.failed", "sequence_number": next(sequence), "response": failed},
            )
            return
        if number == 1 and ask.scenario == "stream-stall":
            await asyncio.sleep(ask.delay)
        yield _sse(
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": next(sequence),
                "item_id": "msg_" + response_id,
                "output_index": 0,
                "content_index": 0,
                "delta": word,
            },
        )
    yield _sse(
        "response.output_text.done",
        {
            "type": "response.output_text.done",
            "sequence_number": next(sequence),
            "item_id": "msg_" + response_id,
            "output_index": 0,
            "content_index": 0,
            "text": ask.reply,
        },
    )
    completed = _responses_object(ask, response_id, "completed", ask.reply)
    yield _sse(
        "response.completed",
        {"type": "response.completed", "sequence_number": next(sequence), "response": completed},
    )


async def openai_responses(request: Request) -> Response:
    ask, refusal = await _ask_or_refuse(request, _OPENAI_ERROR_TYPES, _openai_error)
    if refusal is not None:
        return refusal
    response_id = f"resp_stub{next(_ids):06d}"
    if ask.stream:
        return _stream(ask, _responses_events(ask, response_id))
    return _json(ask, _responses_object(ask, response_id, "completed", ask.reply))


async def list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "stub-model", "object": "model"}]})


def app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
            Route("/v1/chat/completions", openai_chat_completions, methods=["POST"]),
            Route("/v1/responses", openai_responses, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
        ]
    )


class ProviderStub:
    """The stub app under uvicorn in a background thread, on a free loopback port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """``port=0`` picks a free port; raises ``OSError`` if ``port`` is taken."""
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(app(), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def authority(self) -> str:
        """``host:port``, the key to map this stub to a provider."""
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ProviderStub:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"provider stub did not start on {self.url}")
            time.sleep(0.01)
        return self

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C stops it)."""
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            self.stop()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> ProviderStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
