"""Distributed fine-tuning: two MultiWorkerMirroredStrategy workers on 127.0.0.1 (CPU).

Three runs of the same 8 steps (global batch 4, tiny 48x48 net, 12 synthetic rooms):
a single process (default strategy), two workers (2 per worker), and two workers of
which one is SIGKILLed after the checkpoint at step 4 and then both restarted (after a
worker dies, MultiWorkerMirroredStrategy's other workers cannot go on: the cluster is
restarted, as TensorFlow's fault-tolerance guide describes). Every process has a
timeout; the cluster addresses are 127.0.0.1 ports picked free here.

Tolerance: the two-worker loss differs from the single-process one only by float32
summation order (each replica sums its own pixels, then the sums and gradients are
all-reduced), which is ~1e-7 relative per step and grows slowly through the weight
updates; 1e-4 relative over 8 steps leaves a wide margin, while a wrong sharding or
loss normalisation changes the loss by far more (different samples or a factor 2).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from caffe2tf.segmentation.synthetic import write_dataset

WORKER = Path(__file__).with_name("mw_worker.py")
ROOT = Path(__file__).resolve().parents[2]
STEPS, BATCH = 8, 4
RTOL = 1e-4


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(tf_config: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT / "src"),
               no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost", OMP_NUM_THREADS="1",
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    env.pop("http_proxy", None), env.pop("https_proxy", None), env.pop("HTTP_PROXY", None), env.pop("HTTPS_PROXY", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _start(out: Path, strategy: str, data: Path, tf_config: dict | None, delay: float = 0.0) -> subprocess.Popen:
    log = open(out.parent / f"{out.name}-{(tf_config or {}).get('task', {}).get('index', 's')}.log", "ab")
    return subprocess.Popen([sys.executable, str(WORKER), str(out), strategy, str(STEPS), str(BATCH), str(data),
                             str(delay)], env=_env(tf_config), stdout=log, stderr=subprocess.STDOUT)


def _cluster(ports: list[int], index: int) -> dict:
    return {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}


def _wait(procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert rc == 0, f"worker exited with {rc}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _two_workers(out: Path, data: Path, delay: float = 0.0) -> list[subprocess.Popen]:
    ports = _free_ports(2)
    return [_start(out, "multi-worker", data, _cluster(ports, i), delay) for i in range(2)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mwrooms")
    write_dataset(root, 12, 48, seed=5, classes="simple")
    return root


@pytest.fixture(scope="module")
def single(data, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("single") / "run"
    out.mkdir()
    p = _start(out, "default", data, None)
    _wait([p], 120)
    return json.loads((out / "result-0.json").read_text())


def test_two_workers_match_single_process_and_resume_after_a_kill(single, data, tmp_path):
    out = tmp_path / "mw"
    out.mkdir()
    procs = _two_workers(out, data, delay=0.5)  # 0.5 s after each step: time to kill mid-run
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "ckpt-4.index").exists():
            assert time.monotonic() < deadline, "no checkpoint at step 4"
            assert all(p.poll() is None for p in procs), "a worker exited early"
            time.sleep(0.1)
        procs[1].send_signal(signal.SIGKILL)  # a worker dies mid-run ...
        procs[1].wait(10)
        procs[0].kill()  # ... and the cluster is restarted (the chief cannot go on alone)
        procs[0].wait(10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert not (out / "result-0.json").exists()  # it really was interrupted
    first = [json.loads(line) for line in (out / "steps-0.jsonl").read_text().splitlines()]
    assert 4 <= len(first) < STEPS

    _wait(_two_workers(out, data), 150)  # restarted: both resume from the chief's checkpoint
    chief = json.loads((out / "result-0.json").read_text())
    other = json.loads((out / "result-1.json").read_text())
    assert chief["plan"]["strategy"] == "MultiWorkerMirroredStrategy"
    assert chief["plan"]["replicas"] == 2 and chief["plan"]["workers"] == 2
    assert chief["plan"]["global_batch"] == 4 and chief["plan"]["per_replica_batch"] == 2
    assert chief["chief"] and not other["chief"]
    start = chief["start"]
    assert 4 <= start <= len(first) and chief["final"] == STEPS and other["start"] == start
    # the loss curve: steps before the kill from the first run, the rest from the resumed run
    curve = [r["loss"] for r in first[:start]] + chief["losses"]
    assert len(curve) == len(single["losses"]) == STEPS
    np.testing.assert_allclose(curve, single["losses"], rtol=RTOL)
    # steps run twice (after the checkpoint, before the kill) give the same losses again
    np.testing.assert_allclose([r["loss"] for r in first[start:]], chief["losses"][:len(first) - start], rtol=RTOL)
    np.testing.assert_allclose(other["losses"], chief["losses"], rtol=1e-6)  # both report the all-reduced loss
    assert single["losses"][-1] < single["losses"][0]
    assert (out / "model.keras").is_file() and not (out / "checkpoints" / ".worker-1").exists()
    print(f"per step (median, after the first): single {np.median(single['step_seconds'][1:]) * 1e3:.1f} ms, "
          f"two workers {np.median(chief['step_seconds'][1:]) * 1e3:.1f} ms")


def test_device_report_and_exact_float32():
    import tensorflow as tf

    from caffe2tf.devices import device_summary, exact_float32

    line = device_summary()
    gpus = tf.config.list_physical_devices("GPU")
    assert line.startswith("device: ") and (("GPU:0" in line) if gpus else ("CPU" in line))
    assert exact_float32() == bool(gpus)
    if gpus:  # on a GPU, verification must not run in TF32
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
