"""A small Python load client for the benchmarks that compare two cases of one service.

It saturates long before the server does (about 1,100 req/s here), so it suits comparisons of
latency and of work per request (store commands, readiness checks), not the server's throughput:
``stack_overhead`` uses wrk for that.
"""

import asyncio
import statistics
import time

import httpx2


async def load(
    url: str, requests: int, concurrency: int, headers: dict[str, str] | None = None
) -> tuple[float, list[float]]:
    """Send GETs over `concurrency` keep-alive connections; return (elapsed, latencies)."""
    latencies: list[float] = []
    remaining = iter(range(requests))
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(limits=limits) as client:

        async def worker() -> None:
            for _ in remaining:
                began = time.perf_counter()
                response = await client.get(url, headers=headers)
                latencies.append(time.perf_counter() - began)
                if response.status_code >= 500:
                    response.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - began, latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]
