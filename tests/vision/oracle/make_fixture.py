"""Real Ultralytics exports and Ultralytics' own predictions on them: the oracle for our decoding.

Not run by CI (CI has no Ultralytics); run it again to regenerate ``tests/vision/oracle/fixture/``:

    python -m venv .venv-ultra
    echo "$PWD/.venv/lib/python3.11/site-packages" > .venv-ultra/lib/python3.11/site-packages/zz_main.pth
    .venv-ultra/bin/pip install --no-deps ultralytics==8.4.190 ultralytics-thop polars matplotlib \
        contourpy cycler fonttools kiwisolver pyparsing python-dateutil
    PYTHONPATH=tests/vision/oracle/shim .venv-ultra/bin/python tests/vision/oracle/make_fixture.py

The venv borrows torch and the rest from the project's .venv without installing into it. The only
torchvision on PyPI for this torch is a CUDA build that cannot load here, so ``shim/`` stands in for
it with Ultralytics' own NMS, registered as torchvision's operator with its ONNX translation.

Tiny detectors (tens of kB) are built from YAML with no weights and trained a few epochs on
rendered shapes, so that scores and boxes are distinct rather than ties; then each is exported the
ways integrators export (static, rectangular, dynamic, NMS in the graph, end-to-end head, RT-DETR)
and ``predict`` runs on each file with Ultralytics' defaults at the exported size. ``expected.json`` records its boxes.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixture"
NAMES = ["square", "disc", "triangle"]
COLOURS = [(40, 40, 220), (40, 200, 40), (220, 120, 30)]  # BGR
CONFS = (0.25, 0.05)
EPOCHS = 60

YOLO_YAML = """
nc: 3
reg_max: 1
end2end: {end2end}
backbone:
  - [-1, 1, Conv, [8, 3, 2]]
  - [-1, 1, Conv, [12, 3, 2]]
  - [-1, 1, C2f, [12, True]]
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, C2f, [16, True]]
  - [-1, 1, Conv, [16, 3, 2]]
head:
  - [[4, 5], 1, Detect, [nc]]
"""

RTDETR_YAML = """
nc: 3
backbone:
  - [-1, 1, Conv, [8, 3, 2]]
  - [-1, 1, Conv, [12, 3, 2]]
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [16, 3, 2]]
head:
  - [[2, 3, 4], 1, RTDETRDecoder, [nc, 16, 50, 4, 2, 1, 32]]
"""


def render(
    rng: np.random.Generator, w: int, h: int, noise: float = 25.0, shapes: tuple[int, int] = (1, 5)
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """A noisy street-grey image with coloured shapes (``shapes``: at least, fewer than) and labels."""
    img = np.clip(rng.normal(110, noise, (h, w, 3)), 0, 255).astype(np.uint8)
    labels = []
    for _ in range(rng.integers(*shapes)):
        cls = int(rng.integers(0, 3))
        s = int(rng.integers(min(w, h) // 6, min(w, h) // 3))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        if cls == 0:
            cv2.rectangle(img, (x, y), (x + s, y + s), COLOURS[cls], -1)
        elif cls == 1:
            cv2.circle(img, (x + s // 2, y + s // 2), s // 2, COLOURS[cls], -1)
        else:
            pts = np.asarray([[x + s // 2, y], [x, y + s], [x + s, y + s]], np.int32)
            cv2.fillPoly(img, [pts], COLOURS[cls])
        labels.append((cls, (x + s / 2) / w, (y + s / 2) / h, s / w, s / h))
    return img, labels


def dataset(root: Path, n: int = 96) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n if split == "train" else n // 4):
            img, labels = render(rng, int(rng.integers(96, 200)), int(rng.integers(80, 160)))
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), img)
            text = "".join(f"{c} {a:.6f} {b:.6f} {d:.6f} {e:.6f}\n" for c, a, b, d, e in labels)
            (root / "labels" / split / f"{i}.txt").write_text(text)
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {dict(enumerate(NAMES))}\n")
    return data


def train(cls, yaml_text: str, name: str, data: Path, work: Path, epochs: int):
    cfg = work / f"{name}.yaml"
    cfg.write_text(yaml_text)
    model = cls(str(cfg))
    model.train(
        data=str(data),
        epochs=epochs,
        imgsz=96,
        batch=16,
        workers=0,
        device="cpu",
        project=str(work),
        name=name,
        plots=False,
        val=False,
        amp=False,
        verbose=False,
        mosaic=0.0,
    )
    return model


def main() -> int:
    from ultralytics import RTDETR, YOLO

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = np.random.default_rng(42)
    images = {}
    for name, (w, h) in {"wide.png": (288, 162), "tall.png": (140, 240)}.items():
        # less noise: a smaller PNG, the fixture under 1 MB; more shapes: more boxes to compare
        img, _ = render(rng, w, h, noise=10.0, shapes=(6, 10))
        cv2.imwrite(str(OUT / name), img)
        images[name] = img
    expected: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = dataset(work / "shapes")
        variants = []
        yolo = train(YOLO, YOLO_YAML.format(end2end=False), "yolo", data, work, epochs=EPOCHS)
        variants += [
            ("yolo_static", yolo, YOLO, {"imgsz": 96}),
            ("yolo_rect", yolo, YOLO, {"imgsz": [64, 96]}),
            ("yolo_dynamic", yolo, YOLO, {"imgsz": 96, "dynamic": True}),
            ("yolo_nms", yolo, YOLO, {"imgsz": 96, "nms": True}),  # NonMaxSuppression in the graph
        ]
        e2e = train(YOLO, YOLO_YAML.format(end2end=True), "e2e", data, work, epochs=EPOCHS)
        variants.append(
            ("yolo_end2end", e2e, YOLO, {"imgsz": 96, "nms": False})
        )  # nms=False: one-to-one head
        detr = train(RTDETR, RTDETR_YAML, "detr", data, work, epochs=EPOCHS)
        variants.append(("rtdetr", detr, RTDETR, {"imgsz": 96}))
        for name, model, cls, kwargs in variants:
            exported = Path(model.export(format="onnx", simplify=True, **kwargs))
            target = OUT / f"{name}.onnx"
            shutil.copy(exported, target)
            exported.unlink()
            runner = cls(str(target)) if cls is RTDETR else cls(str(target), task="detect")
            per_image = {}
            for conf in CONFS:
                for image_name, img in images.items():
                    # Ultralytics' own defaults (iou 0.7, max_det 300, its letterbox) at conf 0.25 and
                    # at a low conf, where a few-epoch model has many boxes to compare
                    # imgsz as exported: a dynamic file is otherwise run at predict's default 640
                    (result,) = runner.predict(
                        img, verbose=False, device="cpu", conf=conf, imgsz=kwargs["imgsz"]
                    )
                    boxes = result.boxes
                    per_image[f"{image_name}@{conf}"] = {
                        "xyxy": boxes.xyxy.cpu().numpy().round(4).tolist(),
                        "conf": boxes.conf.cpu().numpy().round(6).tolist(),
                        "cls": boxes.cls.cpu().numpy().astype(int).tolist(),
                    }
            expected[name] = {"export": dict(kwargs), "predict": per_image}
            counts = {k: len(v["conf"]) for k, v in per_image.items()}
            print(f"{name}: {target.stat().st_size / 1e3:.0f} kB, detections {counts}", file=sys.stderr)
    import ultralytics

    meta = {"ultralytics": ultralytics.__version__, "names": NAMES}
    (OUT / "expected.json").write_text(
        json.dumps({"made_with": meta, "variants": expected}, separators=(",", ":"))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
