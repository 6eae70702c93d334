#!/usr/bin/env bash
# The README's main job on the bundled example: convert -> verify -> inspect the result.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
C2T=.venv/bin/caffe2tf
mkdir -p "$OUT"
$C2T inspect examples/mini_pspnet/deploy.prototxt examples/mini_pspnet/weights.caffemodel
$C2T convert examples/mini_pspnet/deploy.prototxt examples/mini_pspnet/weights.caffemodel \
  -o "$OUT/model" --force --verify --mean 103.939,116.779,123.68 --bgr
echo "demo: converted model in $OUT/model (model.keras, saved_model/, conversion.json)"
