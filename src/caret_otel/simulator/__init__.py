"""Realistic, deterministic Caret traffic for the local stack, the demo and the tests."""
