"""Benchmarks: the bot measured side by side with its baselines, over loopback, with real Postgres and Redis.

Not tests: nothing here asserts a timing (CI only checks that every benchmark ran, tests/test_bench_smoke.py).
`python -m bench all` runs them; docs/PERFORMANCE.md explains each figure, its baseline and what limits it.
"""
