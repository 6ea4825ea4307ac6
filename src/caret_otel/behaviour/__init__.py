"""Behaviour analysis: funnels, paths and feature adoption (docs/data-dictionary.md)."""
