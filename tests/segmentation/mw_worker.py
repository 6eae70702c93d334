"""One fine-tuning process for test_distributed.py (run as a script, not collected).

argv: OUT STRATEGY STEPS GLOBAL_BATCH DATA_DIR [STEP_DELAY_S]. Writes OUT/result-<task>.json
with the losses and per-step seconds of the steps this process ran.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def main() -> None:
    out, strategy_name, steps, batch, data = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    from caffe2tf.segmentation.distributed import make_strategy, task_id

    strategy = make_strategy(strategy_name, collective_timeout_s=60)  # before any other TF op
    import keras

    from caffe2tf.segmentation.finetune import finetune

    def build() -> keras.Model:
        keras.utils.set_random_seed(0)  # the same initial weights in every process
        inputs = keras.Input((48, 48, 3))
        x = keras.layers.Rescaling(1 / 64.0)(inputs)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(16, 3, padding="same", dilation_rate=2, activation="relu")(x)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
        return keras.Model(inputs, keras.layers.Conv2D(4, 1)(x))

    log = open(os.path.join(out, f"steps-{task_id(strategy)}.jsonl"), "a")

    def on_step(step: int, loss: float) -> None:  # every step's loss, as it happens (a killed run leaves them)
        log.write(json.dumps({"step": step, "loss": loss}) + "\n")
        log.flush()
        time.sleep(delay)

    res = finetune(build, f"{data}/images", f"{data}/labels", out, steps=steps, batch_size=batch, lr=0.05,
                   checkpoint_every=2, seed=0, strategy=strategy, on_step=on_step)
    doc = {"start": res.start_step, "final": res.final_step, "losses": res.losses, "step_seconds": res.step_seconds,
           "plan": res.plan, "chief": res.chief}
    with open(os.path.join(out, f"result-{task_id(strategy)}.json"), "w") as fh:
        json.dump(doc, fh)


if __name__ == "__main__":
    main()
