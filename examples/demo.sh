#!/usr/bin/env bash
# The README's main job on the bundled example, end to end:
# inspect -> convert (+ layer-by-layer verification) -> diff report -> segment a photo -> evaluate.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
C2T=.venv/bin/caffe2tf
NET=examples/mini_pspnet/deploy.prototxt
WEIGHTS=examples/mini_pspnet/weights.caffemodel
mkdir -p "$OUT"

echo "== 1. inspect the Caffe net"
$C2T inspect "$NET" "$WEIGHTS"

echo "== 2. convert to Keras + SavedModel, verifying every layer against the built-in Caffe reference"
$C2T convert "$NET" "$WEIGHTS" -o "$OUT/model" --force --verify --mean 103.939,116.779,123.68 --bgr --classes indoor

echo "== 3. layer-by-layer diff report (HTML)"
$C2T diff "$NET" "$WEIGHTS" --builtin --html "$OUT/diff.html" --rows 8

echo "== 4. segment a photo"
$C2T segment "$OUT/model" examples/room.jpg -o "$OUT/segment" --classes indoor

echo "== 5. evaluate on a tiny labelled set"
$C2T evaluate "$OUT/model" --images examples/rooms/images --labels examples/rooms/labels \
  --classes indoor --json "$OUT/metrics.json" --report "$OUT/report"

echo
echo "demo done. Look at:"
echo "  $OUT/model/              converted model (model.keras, saved_model/, conversion.json, verification.html)"
echo "  $OUT/diff.html           per-layer error plot and table"
echo "  $OUT/segment/room_overlay.png, room_legend.png"
echo "  $OUT/report/report.md    IoU bar chart and confusion matrix"
echo "Serve it with: .venv/bin/caffe2tf serve $OUT/model   (then open http://127.0.0.1:8501/)"
