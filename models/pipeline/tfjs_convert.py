"""Stage 1 of importing a pretrained detector: a TensorFlow.js graph model → raw ONNX, checked.

Runs in the import environment (``scripts/import-models.sh`` makes it: TensorFlow, tf2onnx and the
TF.js graph converter), never on a gateway. It converts the graph, runs TensorFlow and onnxruntime
on the same inputs and refuses the result unless they agree, then writes the raw ONNX and the
comparison for stage 2 (``models.pipeline.import_detector``), which runs in the project's own venv.

    python -m models.pipeline.tfjs_convert MODEL_DIR/nanodet.json OUT_DIR --inputs inputs.npy
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

# oneDNN's reordered float sums differ from the reference kernels by more than the check allows.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

OPSET = 13
MAX_ABS_DIFF = 1e-4


def _tensorflowjs_without_init() -> None:
    """Make ``tensorflowjs`` importable without running its package ``__init__``.

    The converter needs only its weight reader and constants; the ``__init__`` imports Keras, JAX,
    TF-Hub and TF-DF converters that are neither needed nor installed (``--no-deps``).
    """
    if "tensorflowjs" in sys.modules:
        return
    spec = importlib.util.find_spec("tensorflowjs")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tensorflowjs is not installed: run scripts/import-models.sh")
    pkg = types.ModuleType("tensorflowjs")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflowjs"] = pkg
    for sub in ("converters",):
        mod = types.ModuleType(f"tensorflowjs.{sub}")
        mod.__path__ = [str(Path(pkg.__path__[0]) / sub)]
        sys.modules[mod.__name__] = mod


def convert(model_json: Path, out_dir: Path, inputs_npy: Path) -> dict:
    _tensorflowjs_without_init()
    import numpy as np
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx
    from tfjs_graph_converter import api as tfjs_api
    from tfjs_graph_converter.common import CompatMode

    signature = json.loads(model_json.read_text())["signature"]
    in_names = list(signature["inputs"])
    # Outputs in name order (Identity, Identity_1, ...): the order the stage-2 decode relies on.
    out_names = sorted(signature["outputs"], key=lambda n: (len(n), n))
    # TF 2.21 refuses the fused ops of the plain conversion ("NodeDef missing attr 'TArgs'").
    graph = tfjs_api.load_graph_model(str(model_json), compat_mode=CompatMode.TFLITE)
    graph_def = graph.as_graph_def()
    # The grappler pass leaves private attributes tf2onnx cannot type ("Could not infer ...").
    for node in graph_def.node:
        for key in [k for k in node.attr if k.startswith("_")]:
            del node.attr[key]

    inputs = np.load(inputs_npy).astype(np.float32)
    tf.compat.v1.reset_default_graph()
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        tf.import_graph_def(graph_def, name="")
        ref = [sess.run(out_names, {in_names[0]: inputs[i : i + 1]}) for i in range(len(inputs))]
    model_proto, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=in_names, output_names=out_names, opset=OPSET
    )
    onnx.checker.check_model(model_proto)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "raw.onnx"
    onnx.save(model_proto, str(raw))

    sess_ort = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
    onnx_in = sess_ort.get_inputs()[0].name
    onnx_out = [o.name for o in sess_ort.get_outputs()]
    worst = 0.0
    for i in range(len(inputs)):
        got = sess_ort.run(onnx_out, {onnx_in: inputs[i : i + 1]})
        for a, b in zip(ref[i], got, strict=True):
            worst = max(worst, float(np.abs(a - b).max()))
    report = {
        "tensorflow": tf.__version__,
        "tf2onnx": tf2onnx.__version__,
        "opset": OPSET,
        "inputs": in_names,
        "outputs": out_names,
        "output_shapes": [list(r.shape) for r in ref[0]],
        "compared_frames": len(inputs),
        "max_abs_diff": worst,
    }
    (out_dir / "convert.json").write_text(json.dumps(report, indent=2) + "\n")
    if worst > MAX_ABS_DIFF:
        raise SystemExit(
            f"ONNX and TensorFlow disagree by {worst:.2e} (> {MAX_ABS_DIFF:.0e}) on {len(inputs)} "
            "frames: the conversion is wrong, nothing was written for stage 2"
        )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_json", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--inputs", type=Path, required=True, help="[N, 3, H, W] float32 .npy")
    args = parser.parse_args(argv)
    report = convert(args.model_json, args.out_dir, args.inputs)
    print(
        f"converted: ONNX equals TensorFlow within {report['max_abs_diff']:.1e} "
        f"on {report['compared_frames']} frames"
    )


if __name__ == "__main__":
    main()
