"""A bounded load test on loopback: the live service has 1 worker and a queue of 3 (capacity 4).

Below the bound every request succeeds; far above it the surplus gets 503 at once (not a hang,
not a crash) and the service answers normally afterwards. Fixed request counts, client timeouts,
nothing but 127.0.0.1.
"""
from __future__ import annotations

import json
import re
import statistics
import threading
import time

import httpx
import numpy as np

from serving_helpers import LIVE_QUEUE, LIVE_WORKERS

NAME = "mini_pspnet"
CAPACITY = LIVE_WORKERS + LIVE_QUEUE


def _fire(url: str, body: bytes, clients: int, per_client: int) -> list[tuple[int | str, float]]:
    """``clients`` threads, released together, each sending ``per_client`` requests in turn."""
    results: list[tuple[int | str, float]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def worker() -> None:
        with httpx.Client(timeout=60) as c:
            barrier.wait(30)
            for _ in range(per_client):
                t0 = time.perf_counter()
                try:
                    status: int | str = c.post(url, content=body).status_code
                except httpx.HTTPError as exc:  # a reset or a timeout is a failure of the test
                    status = type(exc).__name__
                with lock:
                    results.append((status, time.perf_counter() - t0))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "a client hung"
    return results


def _body(batch: int) -> bytes:
    x = np.round(np.random.default_rng(batch).normal(0, 40, (batch, 113, 113, 3)), 1)  # short JSON numbers
    return json.dumps({"instances": x.tolist()}).encode()


def test_no_errors_at_or_below_the_bound(live_server):
    results = _fire(f"{live_server.url}/v1/models/{NAME}:predict", _body(1), clients=CAPACITY, per_client=4)
    assert len(results) == CAPACITY * 4
    assert [s for s, _ in results if s != 200] == []


def test_503_at_once_above_the_bound_and_alive_after(live_server):
    clients = 16
    results = _fire(f"{live_server.url}/v1/models/{NAME}:predict", _body(6), clients=clients, per_client=1)
    statuses = [s for s, _ in results]
    assert len(statuses) == clients
    assert set(statuses) <= {200, 503}, statuses
    ok = [t for s, t in results if s == 200]
    busy = [t for s, t in results if s == 503]
    print(f"{len(ok)} x 200 (median {statistics.median(ok):.3f} s), {len(busy)} x 503 "
          f"(median {statistics.median(busy) if busy else float('nan'):.3f} s)")
    assert len(ok) >= 1 and len(busy) >= 1, statuses
    assert len(ok) <= clients - 1
    assert statistics.median(busy) < statistics.median(ok), "503s must come back at once, not after a wait"
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        assert c.post(f"/v1/models/{NAME}:predict", content=_body(1)).status_code == 200
        deadline = time.monotonic() + 30
        while True:
            metrics = c.get("/metrics").text
            if "caffe2tf_in_flight 0.0" in metrics or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "caffe2tf_in_flight 0.0" in metrics and "caffe2tf_queue_depth 0.0" in metrics
        rejected = float(re.search(r"^caffe2tf_rejected_requests_total (\S+)$", metrics, re.M).group(1))
        assert rejected >= len(busy)
        r = c.get("/healthz")
        assert r.status_code == 200
    assert live_server.proc.poll() is None
