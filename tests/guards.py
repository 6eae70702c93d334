"""A hang is a failure, not a stuck CI job: one alarm-based time limit for tests."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def time_limit(seconds: int, what: str) -> Iterator[None]:
    """Raise ``TimeoutError`` if the block runs over ``seconds`` (SIGALRM; main thread only)."""
    def fail(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what} hung (over {seconds} s)")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
