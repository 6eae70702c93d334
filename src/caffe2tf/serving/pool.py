"""A bounded worker pool: at most ``workers`` jobs run, at most ``queue_size`` wait.

A job beyond that is refused at once (:class:`OverloadedError`, answered 503): the
service never lets requests pile up without bound, and a client is never left
hanging on a queue that cannot drain. Jobs run in threads: TensorFlow releases the
GIL inside its kernels, and the whole request (JSON or image decoding, the model,
encoding the answer) runs in the job so the event loop stays free to answer
``/healthz``, ``/metrics`` and 503s while the workers are busy.
"""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from caffe2tf.errors import OverloadedError

T = TypeVar("T")





class InferencePool:
    def __init__(self, workers: int = 1, queue_size: int = 8) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, received {workers}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, received {queue_size}")
        self.workers = workers
        self.queue_size = queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caffe2tf-worker")
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._running = 0
        self.rejected = 0

    @property
    def capacity(self) -> int:
        return self.workers + self.queue_size

    @property
    def running(self) -> int:
        return self._running

    @property
    def queue_depth(self) -> int:
        """Jobs admitted and waiting for a worker."""
        with self._lock:
            return max(0, self._admitted - self._running)

    @property
    def in_flight(self) -> int:
        return self._admitted

    async def run(self, fn: Callable[..., T], *args) -> tuple[T, float]:
        """Run ``fn(*args)`` on a worker; returns (result, seconds waited in the queue).

        Raises :class:`OverloadedError` at once when ``workers + queue_size`` jobs are
        already admitted. A job whose caller went away still runs to its end (the
        model cannot be interrupted) and keeps its place in the count until then.
        """
        with self._lock:
            if self._admitted >= self.capacity:
                self.rejected += 1
                raise OverloadedError(f"server busy: {self._running} request(s) running and "
                                 f"{self._admitted - self._running} queued (limit {self.workers} + "
                                 f"{self.queue_size}); retry later")
            self._admitted += 1
        submitted = time.perf_counter()
        waited = [0.0]

        def job() -> T:
            with self._lock:
                self._running += 1
            waited[0] = time.perf_counter() - submitted
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self._running -= 1
                    self._admitted -= 1

        try:
            future = self._executor.submit(job)
        except BaseException:
            with self._lock:
                self._admitted -= 1
            raise
        result = await asyncio.wrap_future(future)
        return result, waited[0]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
