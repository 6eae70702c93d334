"""Helpers shared by the benchmark scripts (never imported by the library or the tests).

* :func:`case_caffemodel` — a reference case's caffemodel, rebuilt from its recipe
  into ``benchmarks/.cache/`` once (same cache key as ``tests/conftest.py``; a copy
  the tests already built is reused).
* :func:`run_child` / :func:`child_main` — run one measurement in a fresh Python
  process (so peak RSS, imports and thread pools are its own) and get its JSON back.
* :class:`RssSampler` — peak resident memory of this process, overall and per stage
  (a sampling thread on top of ``getrusage``'s exact high-water mark).
* :func:`configure_threads` / :func:`matmul_throughput` — pin TensorFlow's thread
  pools and measure the machine's float32 matmul rate with them.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED = REPO.parent / "shared"
SHARED_REFERENCE = SHARED / "caffe_reference"
SYNTH_TOOL = SHARED / "tools" / "synth_caffemodel.py"
CACHE = BENCH / ".cache"
TESTS_CACHE = REPO / "tests" / ".cache"

_RESULT_MARK = "@@BENCH-RESULT@@ "
GiB = 1 << 30
MiB = 1 << 20


# --------------------------------------------------------------------------- inputs

def case_caffemodel(case_dir: Path) -> tuple[Path, float]:
    """``(path, seconds spent building it)`` of the case's caffemodel (0 s when cached)."""
    shipped = case_dir / "weights.caffemodel"
    if shipped.is_file():
        return shipped, 0.0
    recipe = case_dir / "weights.recipe.json"
    digest = hashlib.sha256(recipe.read_bytes() + SYNTH_TOOL.read_bytes()).hexdigest()[:16]
    name = f"weights-{digest}.caffemodel"
    out = CACHE / "caffemodels" / case_dir.name / name
    if out.is_file():
        return out, 0.0
    tests_copy = TESTS_CACHE / "caffemodels" / case_dir.name / name
    if tests_copy.is_file():
        return tests_copy, 0.0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{name}.{os.getpid()}.tmp")
    t0 = time.perf_counter()
    try:
        subprocess.run([sys.executable, str(SYNTH_TOOL), str(recipe), str(tmp)], check=True,
                       capture_output=True, text=True, timeout=900)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, time.perf_counter() - t0


# --------------------------------------------------------------------------- processes

def thread_env(threads: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: thread counts pinned, TF's C++ logging quiet."""
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def run_child(script: Path, task: str, params: Mapping[str, Any], *, threads: int, timeout: float,
              env: Mapping[str, str] | None = None) -> dict:
    """Run ``script --child TASK`` in a fresh interpreter; returns the dict the task returned.

    The child's stderr is passed through (warnings stay visible); a child that fails
    yields ``{"error": ...}`` with the tail of its output instead of raising.
    """
    cmd = [sys.executable, str(script), "--child", task, "--params", json.dumps(dict(params))]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=thread_env(threads, env), cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"error": f"{task}: timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            out = json.loads(line[len(_RESULT_MARK):])
            out.setdefault("child_wall_s", wall)
            return out
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
    return {"error": f"{task}: child exited {proc.returncode} without a result:\n{tail}"}


def child_main(tasks: Mapping[str, Callable[[dict], dict]], argv: list[str]) -> bool:
    """If ``argv`` asks for a child task, run it, print its result and return True."""
    if "--child" not in argv:
        return False
    task = argv[argv.index("--child") + 1]
    params = json.loads(argv[argv.index("--params") + 1]) if "--params" in argv else {}
    try:
        result = tasks[task](params)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        import traceback

        traceback.print_exc()
        result = {"error": f"{task}: {type(exc).__name__}: {exc}"}
    print(_RESULT_MARK + json.dumps(result, default=_json_default), flush=True)
    return True


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


# --------------------------------------------------------------------------- memory

def ru_maxrss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) * (1 if sys.platform == "darwin" else 1024)


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class RssSampler:
    """Samples RSS every ``interval`` seconds in a thread; tracks the peak per stage.

    ``getrusage`` gives the exact peak but only one for the process's lifetime; the
    sampler attributes peaks to stages (``mark(name)``) and can miss spikes shorter
    than ``interval``. Report ``ru_maxrss`` as the peak and the per-stage samples as
    where it happened.
    """

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.stage = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        try:
            rss = self._proc.memory_info().rss
        except Exception:  # noqa: BLE001 - process going away
            return
        if rss > self.peaks.get(self.stage, 0):
            self.peaks[self.stage] = rss

    def mark(self, stage: str) -> None:
        self.sample()
        self.stage = stage
        self.sample()

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- TensorFlow

def configure_threads(threads: int, inter: int = 1):
    """Import TensorFlow with ``threads`` intra-op and ``inter`` inter-op threads; returns tf."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    return tf


def matmul_throughput(shape: int | tuple[int, int, int] = 4096, reps: int = 5, *, threads: int,
                      warmup: int = 1) -> dict:
    """Best-of-``reps`` float32 ``tf.matmul`` of an (m, k) by a (k, n) matrix (2 m k n FLOP);
    ``shape`` is ``(m, k, n)`` or one size for square matrices.

    Run after :func:`configure_threads`, in the process whose thread pools you
    want to measure. Also reports the rate per CPU second (``gflops_cpu``:
    2 m k n / (process CPU seconds / threads)), which other processes competing for
    the cores inflate much less than wall time.
    """
    import tensorflow as tf

    m, k, n = (shape,) * 3 if isinstance(shape, int) else tuple(shape)
    a = tf.random.stateless_normal((m, k), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_normal((k, n), seed=(3, 4), dtype=tf.float32)
    for _ in range(warmup):
        tf.matmul(a, b)
    times, cpus = [], []
    for _ in range(reps):  # eager CPU ops are synchronous: the call returns with the product computed
        t0, c0 = time.perf_counter(), time.process_time()
        c = tf.matmul(a, b)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        del c
    flop = 2.0 * m * k * n
    best, med = min(times), sorted(times)[len(times) // 2]
    return {"shape": [m, k, n], "reps": reps, "times_s": times, "cpu_s": cpus, "best_s": best, "median_s": med,
            "gflops_best": flop / best / 1e9, "gflops_median": flop / med / 1e9,
            "gflops_cpu": flop / (min(cpus) / threads) / 1e9,
            "cpu_share": sum(cpus) / sum(times) / threads}


def numpy_matmul_throughput(n: int = 4096, reps: int = 3) -> float:
    """GFLOP/s of NumPy's BLAS on the same machine (a cross-check of the machine's peak)."""
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


@contextmanager
def timed(store: dict[str, float], name: str, cpu_store: dict[str, float] | None = None) -> Iterator[None]:
    """Wall seconds of the block into ``store[name]`` (process CPU seconds into ``cpu_store``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    yield
    store[name] = time.perf_counter() - t0
    if cpu_store is not None:
        cpu_store[name] = time.process_time() - c0


def time_runs(fn: Callable[[], object], *, warmup: int, runs: int, budget_s: float | None = None,
              threads: int = 1) -> dict:
    """Warm up, then time ``runs`` calls (fewer if ``budget_s`` runs out, never fewer than 2).

    Returns wall ``best_s`` / ``median_s``, and ``best_cpu_s``: the least process CPU
    seconds of one call divided by ``threads`` (what the call would take with the
    cores to itself, if it kept them all busy), plus ``cpu_share``.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    cpus: list[float] = []
    start = time.perf_counter()
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if budget_s is not None and time.perf_counter() - start > budget_s and len(times) >= 2:
            break
    s = sorted(times)
    return {"times_s": times, "cpu_s": cpus, "best_s": s[0], "median_s": s[len(s) // 2], "runs": len(times),
            "best_cpu_s": min(cpus) / threads, "cpu_share": sum(cpus) / sum(times) / threads}


# --------------------------------------------------------------------------- the machine

def machine_info() -> dict:
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next((l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")), "")
        info["simd"] = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags.split()]
    except OSError:
        pass
    return info


def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"
