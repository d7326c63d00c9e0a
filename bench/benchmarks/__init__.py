"""One module per benchmark, each an `async def run(ctx) -> BenchResult` (see bench/core.py)."""
