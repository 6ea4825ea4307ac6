"""A/B experiments from assignment to a decision (``docs/experiments.md``).

``definitions`` (experiments as code), ``metrics`` (the catalog), ``stats`` (GrowthBook's
frequentist engine on numpy), ``planning`` (sample size, power, duration), ``analysis``
(the report and the decision) and ``store`` (the analytics views). Assignment itself is
``caret_otel.sdk.experiments``, shared with Caret's services.
"""
