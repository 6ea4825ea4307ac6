"""HTTP bodies (caret_otel.otlp.body, shared by the gateway and the exporter): content
types, gzip and zstd within limits, protobuf and OTLP/JSON decoding, responses."""

from __future__ import annotations

import gzip

import orjson
import pytest
import zstandard
from google.protobuf import json_format
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from caret_otel.core.errors import RequestError
from caret_otel.otlp import body as otlp_body
from caret_otel.otlp.body import JSON, PROTOBUF


@pytest.mark.parametrize(
    ("header", "media"),
    [
        ("application/x-protobuf", PROTOBUF),
        ("application/json; charset=utf-8", JSON),
        ("Application/JSON", JSON),
    ],
)
def test_the_two_otlp_media_types_are_accepted(header: str, media: str) -> None:
    assert otlp_body.media_type(header) == media


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/grpc"])
def test_other_media_types_are_refused_with_415(header: str | None) -> None:
    with pytest.raises(RequestError) as raised:
        otlp_body.media_type(header)
    assert raised.value.status == 415
    assert PROTOBUF in raised.value.message


def test_zstd_bodies_are_inflated_including_multi_frame_streams() -> None:
    frames = zstandard.ZstdCompressor()
    assert otlp_body.inflate(frames.compress(b"abc"), "zstd") == b"abc"
    assert otlp_body.inflate(frames.compress(b"ab") + frames.compress(b"cd"), "ZSTD") == b"abcd"
    large = bytes(range(256)) * 40_000  # many input steps, several blocks
    assert otlp_body.inflate(frames.compress(large), "zstd") == large
    streamed = frames.compressobj()  # no content size in the frame header
    body = streamed.compress(large) + streamed.flush()
    assert otlp_body.inflate(body, "zstd") == large


def test_a_zstd_bomb_is_stopped_near_the_limit() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(64 << 20))  # ~2 kB
    with pytest.raises(RequestError) as raised:
        otlp_body.inflate(bomb, "zstd", max_bytes=1 << 20)
    assert raised.value.status == 413


def test_gzip_bodies_are_inflated_including_multi_member_streams() -> None:
    assert otlp_body.inflate(gzip.compress(b"abc"), "gzip") == b"abc"
    assert otlp_body.inflate(gzip.compress(b"ab") + gzip.compress(b"cd"), " GZIP ") == b"abcd"
    assert otlp_body.inflate(b"plain", None) == b"plain"
    assert otlp_body.inflate(b"plain", "identity") == b"plain"


@pytest.mark.parametrize(
    ("body", "encoding", "status"),
    [
        (b"not gzip at all", "gzip", 400),
        (gzip.compress(b"x" * 100)[:-12], "gzip", 400),  # truncated
        (gzip.compress(b"x" * 1000), "gzip", 413),  # inflates beyond the (small) limit
        (b"not zstd at all", "zstd", 400),
        (b"", "zstd", 400),
        (zstandard.ZstdCompressor().compress(bytes(range(256)) * 8)[:-5], "zstd", 400),
        (zstandard.ZstdCompressor().compress(b"x") + b"trailing", "zstd", 400),
        (zstandard.ZstdCompressor().compress(b"x" * 1000), "zstd", 413),
        (b"x", "br", 415),
    ],
)
def test_broken_oversized_or_unsupported_encodings_are_refused(
    body: bytes, encoding: str, status: int
) -> None:
    with pytest.raises(RequestError) as raised:
        otlp_body.inflate(body, encoding, max_bytes=500)
    assert raised.value.status == status


def test_otlp_json_with_hex_ids_decodes_like_protobuf() -> None:
    document = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000000",
                                "eventName": "x",
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "attributes": [{"key": "k", "value": {"intValue": "7"}}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    request = otlp_body.decode_request(orjson.dumps(document), JSON, ExportLogsServiceRequest)
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert record.span_id.hex() == "eee19b7ec3c1b174"
    assert record.time_unix_nano == 1_700_000_000_000_000_000
    assert record.attributes[0].value.int_value == 7
    again = otlp_body.decode_request(
        request.SerializeToString(), PROTOBUF, ExportLogsServiceRequest
    )
    assert again == request


@pytest.mark.parametrize(
    ("body", "media"),
    [
        (b"\xff\xff\xff", PROTOBUF),
        (b"{not json", JSON),
        (b"[1, 2]", JSON),
        (b'{"resourceLogs": 5}', JSON),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}', JSON),
    ],
)
def test_undecodable_bodies_are_refused_with_400(body: bytes, media: str) -> None:
    with pytest.raises(RequestError) as raised:
        otlp_body.decode_request(body, media, ExportLogsServiceRequest)
    assert raised.value.status == 400
    assert raised.value.message


def test_an_empty_body_is_an_empty_request() -> None:
    assert (
        otlp_body.decode_request(b"", JSON, ExportLogsServiceRequest) == ExportLogsServiceRequest()
    )
    assert (
        otlp_body.decode_request(b"", PROTOBUF, ExportLogsServiceRequest)
        == ExportLogsServiceRequest()
    )


def test_responses_and_errors_use_the_request_encoding() -> None:
    response = ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(rejected_log_records=2, error_message="why")
    )
    assert orjson.loads(otlp_body.encode_response(response, JSON)) == {
        "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "why"}
    }
    assert (
        ExportLogsServiceResponse.FromString(otlp_body.encode_response(response, PROTOBUF))
        == response
    )
    status = Status.FromString(
        otlp_body.rpc_status_body(RequestError(503, "unavailable", "down"), PROTOBUF)
    )
    assert (status.code, status.message) == (14, "down")
    assert json_format.ParseDict(
        orjson.loads(otlp_body.rpc_status_body(RequestError(400, "bad_json", "bad"), JSON)),
        Status(),
    ) == (Status(code=3, message="bad"))
