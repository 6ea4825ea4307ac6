"""Query extraction and Grafana-style expansion of variables and macros."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caret_otel.dashboards import generate
from caret_otel.dashboards import panel_queries as pq

RANGE = pq.TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


def test_variables_in_all_three_syntaxes() -> None:
    text = 'x{a=~"$provider", b="${model}", c="[[env]]"}'
    values = {"provider": "anthropic", "model": "m", "env": "prod"}
    assert pq.substitute(text, values) == 'x{a=~"anthropic", b="m", c="prod"}'


def test_regex_backreferences_and_macros_are_left_alone() -> None:
    text = 'label_replace(x, "a", "$1", "b", "(.*)")[$__rate_interval]'
    assert pq.substitute(text, {}) == text


def test_unknown_variable_is_an_error() -> None:
    with pytest.raises(pq.ExpansionError, match=r"\$nope"):
        pq.substitute('x{a=~"$nope"}', {})


def test_promql_macros() -> None:
    expanded = pq.expand_promql(
        "rate(x[$__rate_interval]) + increase(x[$__range]) + x[$__interval]",
        {},
        RANGE,
        scrape_interval_s=15,
    )
    # one day / 1000 points = 86 s step; rate interval = step + scrape interval.
    assert expanded == "rate(x[101s]) + increase(x[86400s]) + x[86s]"


def test_short_range_rate_interval_is_four_scrapes() -> None:
    short = pq.TimeRange.last(timedelta(minutes=30))
    assert pq.expand_promql("rate(x[$__rate_interval])", {}, short) == "rate(x[60s])"


def test_unknown_promql_macro_is_an_error() -> None:
    with pytest.raises(pq.ExpansionError, match="unknown Grafana macro"):
        pq.expand_promql("x[$__range_ms]", {}, RANGE)


def test_sql_macros() -> None:
    sql = "SELECT 1 FROM t WHERE $__timeFilter(day) AND ts < $__timeTo() AND g = '$granularity'"
    assert pq.expand_sql(sql, {"granularity": "week"}, RANGE) == (
        "SELECT 1 FROM t WHERE day BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-02T00:00:00Z' "
        "AND ts < '2026-01-02T00:00:00Z' AND g = 'week'"
    )


def test_unknown_sql_macro_is_an_error() -> None:
    with pytest.raises(pq.ExpansionError, match="only"):
        pq.expand_sql("SELECT $__timeGroup(day, '1d')", {}, RANGE)


def test_label_values_query() -> None:
    assert pq.label_values_query('label_values(m{a=~"x"}, b)') == ('m{a=~"x"}', "b")
    assert pq.label_values_query("label_values(b)") == (None, "b")
    with pytest.raises(pq.ExpansionError):
        pq.label_values_query("query_result(up)")


def test_regex_escaping_of_values() -> None:
    assert pq.escape_regex("claude-3.5+x") == "claude-3\\\\.5\\\\+x"


def test_variable_values_resolve_in_order_and_escape() -> None:
    dashboard = generate.build_dashboards()["caret-llm-api"]
    asked: list[tuple[str | None, str]] = []

    def resolve(selector: str | None, label: str) -> list[str]:
        asked.append((selector, label))
        return {
            "gen_ai_provider_name": ["anthropic"],
            "gen_ai_request_model": ["claude-sonnet-4.5"],
        }.get(label, [])

    values = pq.variable_values(dashboard, resolve)
    assert values["prometheus_ds"] == "prometheus"
    assert values["environment"] == ".*"  # no environment label yet: "All"
    assert values["provider"] == "anthropic"
    assert values["model"] == "claude-sonnet-4\\\\.5"
    # the model query was asked with the provider already substituted
    assert 'gen_ai_provider_name=~"anthropic"' in str(asked[-1][0])


def test_every_query_of_every_dashboard_expands() -> None:
    for dashboard in generate.build_dashboards().values():
        values = pq.variable_values(dashboard, lambda _s, _l: ["v"])
        expanded = pq.expanded_queries(dashboard, values, RANGE)
        assert len(expanded) == len(pq.panel_queries(dashboard))
        for query, text in expanded:
            assert "$__" not in text, query
            assert "${" not in text, query


def test_instant_flag_is_read() -> None:
    dashboard = generate.build_dashboards()["caret-product-usage"]
    kinds = {q.panel: q.instant for q in pq.panel_queries(dashboard) if q.is_promql}
    assert kinds["Tasks started"] is True
    assert kinds["Task starts by mode"] is False


def test_each_dashboard_has_a_relative_default_range() -> None:
    end = datetime(2026, 1, 31, tzinfo=UTC)
    ranges = {
        uid: pq.TimeRange.of_dashboard(d, end) for uid, d in generate.build_dashboards().items()
    }
    assert ranges["caret-business"].start == end - timedelta(days=30)
    assert ranges["caret-llm-api"].start == end - timedelta(hours=6)


def test_absolute_default_range_is_refused() -> None:
    with pytest.raises(pq.ExpansionError, match="now-<n><unit>"):
        pq.TimeRange.of_dashboard({"uid": "x", "time": {"from": "2026-01-01", "to": "now"}})
