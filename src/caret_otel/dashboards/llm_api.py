"""*LLM API performance*: latency, errors, tokens and throughput per provider and model.

Source: the upstream GenAI client metrics (operation duration and token usage) from
Caret's services, plus the client-reported API error and token counters (which include
prompt-cache tokens).
"""

from __future__ import annotations

from typing import Any

from caret_otel.dashboards import expressions as x
from caret_otel.dashboards import promql as q
from caret_otel.dashboards.board import Board, query_variable
from caret_otel.dashboards.datasources import PROMETHEUS
from caret_otel.dashboards.panels import Prom, graph, single
from caret_otel.dashboards.promnames import prometheus_label, prometheus_name
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics

UID = "caret-llm-api"
W = q.RATE_WINDOW

ENV_FILTER = q.match(x.ENVIRONMENT, "$environment")
FILTERS = (ENV_FILTER, q.match(x.PROVIDER, "$provider"), q.match(x.MODEL, "$model"))
BY_PROVIDER_MODEL = (x.PROVIDER, x.MODEL)
PM_LEGEND = "{{" + x.PROVIDER + "}} / {{" + x.MODEL + "}}"

API_ERRORS = prometheus_name(metrics.CARET_API_ERRORS)
CARET_TOKENS = prometheus_name(metrics.CARET_TOKENS)
API_COST = prometheus_name(metrics.CARET_API_COST)
HTTP_STATUS = prometheus_label(attrs.HTTP_RESPONSE_STATUS_CODE)
CARET_TOKEN_TYPE = prometheus_label(attrs.CARET_TOKEN_TYPE)
TOKEN_USAGE_BUCKET = prometheus_name(metrics.GEN_AI_CLIENT_TOKEN_USAGE, "bucket")
DURATION = metrics.GEN_AI_CLIENT_OPERATION_DURATION.name
TOKEN_USAGE = metrics.GEN_AI_CLIENT_TOKEN_USAGE.name


def _variables() -> list[Any]:
    count = x.OPERATION_DURATION_COUNT
    return [
        query_variable(
            "environment", "Environment", PROMETHEUS,
            f"label_values({count}, {x.ENVIRONMENT})",
            f"{attrs.DEPLOYMENT_ENVIRONMENT_NAME} of the reporting services; All also matches series without it.",
        ),
        query_variable(
            "provider", "Provider", PROMETHEUS,
            f"label_values({q.selector(count, ENV_FILTER)}, {x.PROVIDER})",
            f"{attrs.GEN_AI_PROVIDER_NAME} (anthropic, openai, ...).",
        ),
        query_variable(
            "model", "Model", PROMETHEUS,
            f"label_values({q.selector(count, ENV_FILTER, q.match(x.PROVIDER, '$provider'))}, {x.MODEL})",
            f"{attrs.GEN_AI_REQUEST_MODEL} of the selected providers.",
        ),
    ]  # fmt: skip


def build() -> dict[str, Any]:
    board = Board(
        UID,
        "Caret · LLM API performance",
        "Latency, errors, tokens and throughput of model-provider calls, per provider and model.",
        [PROMETHEUS],
        _variables(),
    )
    board.row(
        "Overview",
        single("Provider calls", "Provider calls per second for the selected providers and models.",
               "reqps", Prom(x.genai_requests(W, (), FILTERS))),
        single("Error ratio", f"Share of provider calls that ended with an {attrs.ERROR_TYPE}.",
               "percentunit", Prom(x.genai_error_ratio(W, (), FILTERS))),
        single("p99 latency", f"99th percentile of {DURATION} over all selected calls.",
               "s", Prom(x.genai_latency(0.99, W, (), FILTERS))),
        single("Tokens per second", f"Input plus output tokens per second ({TOKEN_USAGE}).",
               "short", Prom(q.sum_rate(q.selector(x.TOKEN_USAGE_SUM, *FILTERS), (), W))),
    )  # fmt: skip
    board.row(
        "Latency",
        graph(
            "Latency p50 / p95 / p99 per provider and model",
            f"Quantiles of {DURATION}: how long a provider call takes, end to end, "
            "as seen by Caret's services. Which provider or model is slow right now?",
            "s",
            *(Prom(x.genai_latency(qt, W, BY_PROVIDER_MODEL, FILTERS), f"p{int(qt * 100)} {PM_LEGEND}")
              for qt in (0.5, 0.95, 0.99)),
            width=24, height=10,
        ),
        graph(
            "Latency p99 by operation",
            f"99th percentile latency per {attrs.GEN_AI_OPERATION_NAME} (chat, embeddings, execute_tool, ...).",
            "s", Prom(x.genai_latency(0.99, W, (x.OPERATION,), FILTERS), "{{" + x.OPERATION + "}}"),
        ),
        graph(
            "Median latency by provider",
            "p50 latency per provider, all selected models together: the typical experience.",
            "s", Prom(x.genai_latency(0.5, W, (x.PROVIDER,), FILTERS), "{{" + x.PROVIDER + "}}"),
        ),
    )  # fmt: skip
    board.row(
        "Errors",
        graph(
            "Error ratio per provider and model",
            "Failed calls / all calls per provider and model (0 when a model had no failures).",
            "percentunit", Prom(x.genai_error_ratio(W, BY_PROVIDER_MODEL, FILTERS), PM_LEGEND),
        ),
        graph(
            "Error ratio by error type",
            f"Failed calls of each {attrs.ERROR_TYPE} (timeout, 429, 500, ...) as a share of all selected calls.",
            "percentunit",
            Prom(f"{x.genai_errors(W, (x.ERROR_TYPE,), FILTERS)} / on() group_left() "
                 f"({x.genai_requests(W, (), FILTERS)})", "{{" + x.ERROR_TYPE + "}}"),
        ),
        graph(
            "Client-reported provider errors by error type",
            f"{metrics.CARET_API_ERRORS.name}: provider failures seen by the Caret extension (including retries), per second.",
            "reqps",
            Prom(q.sum_rate(q.selector(API_ERRORS, *FILTERS), (x.PROVIDER, x.ERROR_TYPE), W),
                 "{{" + x.PROVIDER + "}} {{" + x.ERROR_TYPE + "}}"),
        ),
        graph(
            "Client-reported provider errors by HTTP status",
            f"{metrics.CARET_API_ERRORS.name} per second by {attrs.HTTP_RESPONSE_STATUS_CODE}: "
            "Cline 2026 task.provider_api_error and Caret 0.4.x extension.message alike.",
            "reqps",
            Prom(q.sum_rate(q.selector(API_ERRORS, *FILTERS), (HTTP_STATUS,), W), "{{" + HTTP_STATUS + "}}"),
        ),
    )  # fmt: skip
    board.row(
        "Tokens",
        graph(
            "Token throughput by type",
            f"{TOKEN_USAGE} summed per second, split into input and output tokens.",
            "short",
            Prom(q.sum_rate(q.selector(x.TOKEN_USAGE_SUM, *FILTERS), (x.TOKEN_TYPE,), W), "{{" + x.TOKEN_TYPE + "}}"),
            stacked=True,
        ),
        graph(
            "Client-reported tokens by type (with prompt cache)",
            f"{metrics.CARET_TOKENS.name} per second by type: input (including cache reads and "
            "writes), output, cache_read, cache_write; each request counted once.",
            "short",
            Prom(q.sum_rate(q.selector(CARET_TOKENS, *FILTERS), (CARET_TOKEN_TYPE,), W), "{{" + CARET_TOKEN_TYPE + "}}"),
            stacked=True,
        ),
        graph(
            "Tokens per call p95 by type and model",
            "95th percentile of tokens in one call: spots prompts that grow without bound.",
            "short",
            Prom(q.quantile(0.95, q.selector(TOKEN_USAGE_BUCKET, *FILTERS), (x.TOKEN_TYPE, x.MODEL), W),
                 "{{" + x.TOKEN_TYPE + "}} {{" + x.MODEL + "}}"),
            width=24,
        ),
    )  # fmt: skip
    board.row(
        "Cost",
        graph(
            "Client-reported cost by model",
            f"{metrics.CARET_API_COST.name}: USD per hour the clients reported, per provider and model.",
            "currencyUSD",
            Prom(f"3600 * {q.sum_rate(q.selector(API_COST, *FILTERS), BY_PROVIDER_MODEL, W)}", PM_LEGEND),
            stacked=True, width=24,
        ),
    )  # fmt: skip
    board.row(
        "Throughput",
        graph(
            "Provider calls per second by provider and model",
            f"Request rate of {DURATION}, per provider and model.",
            "reqps", Prom(x.genai_requests(W, BY_PROVIDER_MODEL, FILTERS), PM_LEGEND), stacked=True,
        ),
        graph(
            "Provider calls per second by operation",
            "Request rate per gen_ai.operation.name.",
            "reqps", Prom(x.genai_requests(W, (x.OPERATION,), FILTERS), "{{" + x.OPERATION + "}}"),
        ),
    )  # fmt: skip
    return board.build()
