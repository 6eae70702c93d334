"""The bounded pool on its own: admission, immediate refusal, counts back to zero."""
from __future__ import annotations

import asyncio
import threading

import pytest

from caffe2tf.serving.pool import InferencePool, OverloadedError


def test_pool_refuses_beyond_capacity_at_once():
    pool = InferencePool(workers=1, queue_size=2)
    gate = threading.Event()

    async def main():
        jobs = [asyncio.create_task(pool.run(gate.wait, 10)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert pool.in_flight == 3 and pool.running == 1 and pool.queue_depth == 2
        with pytest.raises(OverloadedError, match="server busy"):
            await asyncio.wait_for(pool.run(lambda: None), timeout=1)
        gate.set()
        results = await asyncio.gather(*jobs)
        assert [r for r, _ in results] == [True, True, True]
        assert pool.in_flight == 0 and pool.queue_depth == 0 and pool.rejected == 1
        value, waited = await pool.run(lambda: 42)
        assert value == 42 and waited >= 0

    asyncio.run(main())
    pool.shutdown()


def test_pool_job_errors_propagate_and_free_the_slot():
    pool = InferencePool(workers=1, queue_size=0)

    async def main():
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 / 0)
        assert pool.in_flight == 0
        assert (await pool.run(lambda: "ok"))[0] == "ok"

    asyncio.run(main())
    pool.shutdown()


@pytest.mark.parametrize("workers, queue", [(0, 1), (1, -1)])
def test_pool_rejects_bad_sizes(workers, queue):
    with pytest.raises(ValueError):
        InferencePool(workers, queue)
