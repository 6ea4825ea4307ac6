"""Contracts between parts that must not depend on each other: where the checkout is,
and the environment names and file paths of our Collector configs."""
