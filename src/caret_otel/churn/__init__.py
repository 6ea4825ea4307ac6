"""Churn prediction from stored pseudonymous aggregates (docs/churn.md)."""
