"""Cameras, their models, zones and rules; the vision engine's shared settings.

Every threshold, dwell time and class list of the street-issue rules lives here, with defaults that
suit a pole camera sampled at 2 fps, so a city tunes its cameras without code and a minimal camera
section (id, source, models) works.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .base import Section
from .device import DEVICE_ID_PATTERN

SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"  # the models this checkout ships

# Objects that do not move: deduplicated by place, so an occlusion never opens a second issue.
STATIC_CLASSES = ("garbage", "pothole", "debris_pile", "illegal_ad", "manhole_missing", "manhole_displaced")


class IssueRule(Section):
    """When a tracked object of one class becomes an issue, and when the issue ends."""

    k: int = Field(default=3, ge=1, description="seen in at least k of the last n inferred frames")
    n: int = Field(default=5, ge=1)
    min_dwell_s: float = Field(default=10.0, ge=0, description="present this long before it is an issue")
    min_confidence: float = Field(default=0.4, ge=0, le=1, description="median score over the track's life")
    static: bool = Field(default=False, description="does not move: deduplicated by place, not track id")
    place_iou: float = Field(
        default=0.3, gt=0, le=1, description="overlap that makes two sightings one place"
    )
    end_after_s: float = Field(default=30.0, gt=0, description="absent this long: the issue ends")
    heartbeat_s: float = Field(default=600.0, gt=0, description="update sent at least this often while open")
    cooldown_s: float = Field(default=300.0, ge=0, description="no re-opening at the same place this long")
    change_iou: float = Field(default=0.7, ge=0, le=1, description="box overlap below this is a change")
    change_confidence: float = Field(default=0.1, ge=0, le=1, description="score change that is an update")

    @model_validator(mode="after")
    def _k_of_n(self) -> IssueRule:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) cannot exceed n ({self.n})")
        return self


def static_rule() -> IssueRule:
    # Static issues: a bus parked in front for minutes is not the end of a pothole; hours of memory.
    return IssueRule(
        static=True, min_dwell_s=30.0, end_after_s=1800.0, heartbeat_s=3600.0, cooldown_s=6 * 3600
    )


def default_issue_rules() -> dict[str, IssueRule]:
    rules = {name: static_rule() for name in STATIC_CLASSES}
    rules["street_stall"] = IssueRule(min_dwell_s=60.0, end_after_s=120.0)
    rules["illegal_parking"] = IssueRule(k=4, n=6, end_after_s=60.0)
    return rules


class CountRule(Section):
    """More than ``more_than`` objects of ``label`` in the zone for ``dwell_s``: e.g. bikes piling up."""

    label: str
    more_than: int = Field(ge=0)
    dwell_s: float = Field(default=300.0, ge=0)
    end_after_s: float = Field(default=120.0, gt=0, description="below the limit this long: it ends")
    event_label: str | None = Field(default=None, description="label of the issue; default LABEL_pileup")

    @property
    def issue_label(self) -> str:
        return self.event_label or f"{self.label}_pileup"


def check_polygon(points: list[tuple[float, float]], what: str) -> list[tuple[float, float]]:
    if len(points) < 3:
        raise ValueError(f"a {what} polygon needs at least 3 corners")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"corner ({x}, {y}) is outside the image; use normalized 0..1 coordinates")
    return points


class ZoneConfig(Section):
    id: str = Field(pattern=DEVICE_ID_PATTERN)
    polygon: list[tuple[float, float]] = Field(description="normalized [x, y] corners, 0..1")
    classes: list[str] = Field(default_factory=list, description="classes this zone watches; empty: all")
    area_m2: float | None = Field(default=None, gt=0, description="ground area, for crowd density")
    parking_limit_s: float | None = Field(
        default=None, gt=0, description="no-parking zone: a vehicle dwelling longer is illegal parking"
    )
    count_rules: list[CountRule] = Field(default_factory=list)
    crowd_alarm_density: float | None = Field(
        default=None, gt=0, description="persons per m² that raise a crowd alarm here (overrides camera)"
    )
    crowd_alarm_count: int | None = Field(default=None, gt=0, description="persons that raise a crowd alarm")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return check_polygon(points, "zone")


class MaskConfig(Section):
    """An area whose detections are not believed: a shop sign the model reads as a flyer or a stall,
    a poster of a face, a flag that moves. A detection of a masked class whose ground point (the
    middle of its box's bottom edge, as for zones) lies inside is dropped before tracking, so it
    opens no issue, counts nowhere and crosses no line."""

    id: str = Field(pattern=DEVICE_ID_PATTERN)
    polygon: list[tuple[float, float]] = Field(description="normalized [x, y] corners, 0..1")
    classes: list[str] = Field(default_factory=list, description="classes dropped here; empty: all")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return check_polygon(points, "mask")


MIN_LINE = 0.02  # a counting line shorter than this (of the frame's size) counts jitter, not crossings


class LineConfig(Section):
    """A counting line: tracked objects whose ground point crosses it, counted once per direction.

    Facing from its first point to its second, ``in`` crosses from the left side to the right."""

    id: str = Field(pattern=DEVICE_ID_PATTERN)
    points: list[tuple[float, float]] = Field(description="its two ends, normalized [x, y], 0..1")
    classes: list[str] = Field(default_factory=list, description="classes counted; empty: all")
    report_interval_s: float = Field(
        default=60.0, gt=0, description="a crossing event with the counts this often"
    )

    @field_validator("points")
    @classmethod
    def _points(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(points) != 2:
            raise ValueError(f"a counting line needs exactly 2 points, not {len(points)}")
        for x, y in points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point ({x}, {y}) is outside the image; use normalized 0..1 coordinates")
        (x1, y1), (x2, y2) = points
        if ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5 < MIN_LINE:
            raise ValueError(f"the line's ends are closer than {MIN_LINE} of the frame: draw it longer")
        return points


class TrackerConfig(Section):
    # None: whatever the model reports (its manifest's thresholds) may start a track, so detections
    # between a model's threshold and some fixed bar still reach the rules and the preview.
    high_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="detections that may start a track; default: all the model reports",
    )
    low_confidence: float = Field(default=0.1, ge=0, le=1, description="weaker ones only extend tracks")
    match_iou: float = Field(default=0.3, gt=0, le=1)
    lost_s: float = Field(default=10.0, gt=0, description="a track unseen this long is forgotten")


class CrowdConfig(Section):
    person_label: str = "person"
    # Measured on real footage (models/footage/vtest): the density model reads 7-14 people on a street
    # with 4-9, while the real-image detector's count is off by under one; so the density map decides
    # only once it reads a crowd, and never counts fewer than the detector sees.
    sparse_below: float = Field(
        default=20.0, ge=0, description="density counts below this are not trusted: count detections"
    )
    smoothing: float = Field(default=0.3, gt=0, le=1, description="weight of the newest count (EMA)")
    alarm_density: float = Field(default=4.0, gt=0, description="persons per m² that raise a crowd alarm")
    alarm_dwell_s: float = Field(default=30.0, ge=0, description="over the threshold this long first")
    report_interval_s: float = Field(default=60.0, gt=0, description="a crowd count per zone this often")


class MotionConfig(Section):
    enabled: bool = True
    threshold: float = Field(default=1.5, ge=0, description="mean abs grey difference (0-255) that is motion")
    thumbnail_width: int = Field(default=64, ge=8, le=640)
    max_skip_s: float = Field(default=30.0, gt=0, description="infer at least this often even if still")


class SnapshotConfig(Section):
    """Images leave the device only when enabled, and then fail-closed (data minimization).

    By default a snapshot shows only the issue's region and a margin, cut from the frame; inside it
    people, faces and plates are blurred. People a detector misses are then at least few.
    """

    enabled: bool = False
    region: Literal["issue", "full"] = Field(
        default="issue",
        description="issue: only the issue's box and a margin, the rest cut; full: the whole frame "
        "(logged at warning and marked in the event)",
    )
    margin: float = Field(default=0.5, ge=0, le=4, description="added on each side, in box widths/heights")
    min_region: float = Field(
        default=0.2, gt=0, le=1, description="smallest region side, as a fraction of the frame's"
    )
    blur_labels: list[str] = Field(
        default_factory=lambda: ["person", "face", "licence_plate", "license_plate"]
    )
    vehicle_labels: list[str] = Field(
        default_factory=lambda: ["vehicle", "car", "truck", "bus", "motorcycle"]
    )
    blur_plate_region: bool = Field(
        default=True, description="without a plate class, blur the lower part of every vehicle"
    )
    face_model: Path = Field(
        # the shipped model, wherever the agent runs from: a default relative to the working directory
        # would change with it (systemd runs the agent from /), and a config file that spells the
        # default out would move it to the file's folder
        default=SHIPPED_MODELS / "blazeface",
        description="BlazeFace folder or .onnx; without it, no snapshot",
    )
    face_confidence: float = Field(default=0.4, gt=0, lt=1, description="face score that is blurred")
    check_passes: int = Field(
        default=4,
        ge=0,
        le=8,
        description="the detectors look again at the blurred snapshot and what they still find is "
        "blurred, this often; one still showing a person or face then is not sent",
    )
    max_width: int = Field(default=1280, ge=64)
    max_height: int = Field(default=1280, ge=64)
    jpeg_quality: int = Field(default=80, ge=10, le=100)
    max_bytes: int = Field(
        default=150_000, ge=1024, description="larger JPEGs are re-encoded smaller, else not sent"
    )
    max_per_minute: int = Field(default=6, ge=1, description="snapshots per camera per minute, at most")
    keep_dir: Path | None = Field(default=None, description="also keep each snapshot here, on disk")
    keep_days: float = Field(default=7.0, gt=0, description="kept snapshots older than this are deleted")


class CameraConfig(Section):
    id: str = Field(pattern=DEVICE_ID_PATTERN)
    source: str = Field(description="video file, image folder, rtsp:// or http:// URL, or usb:N")
    # The camera's password never has to be written in the config: the source names the user
    # (rtsp://admin@10.0.0.5/stream) and the password comes from a file or variable at open time.
    password_file: Path | None = Field(default=None, description="file holding the camera's password")
    password_env: str | None = Field(
        default=None, description="environment variable with the camera's password"
    )
    fps: float = Field(default=2.0, gt=0, le=60, description="frames sampled per second")
    loop: bool = Field(default=False, description="files and folders: start again at the end")
    models: list[Path] = Field(
        min_length=1,
        description="model folders (with manifest.json), or .onnx exports described by their metadata",
    )
    model_labels: dict[str, list[str]] = Field(
        default_factory=dict,
        description="model id -> the only labels this camera takes from that model (e.g. people and "
        "vehicles from the real-image detector, street issues from street-issues); unnamed models: all",
    )
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list, description="counting lines (crossing events)")
    masks: list[MaskConfig] = Field(
        default_factory=list, description="areas whose detections are dropped (signs read as issues)"
    )
    confidence: dict[str, float] = Field(
        default_factory=dict, description="detection threshold per class, over the manifest's"
    )
    issues: dict[str, IssueRule] = Field(default_factory=default_issue_rules)
    parking_classes: list[str] = Field(
        default_factory=lambda: ["vehicle", "car", "truck", "bus", "motorcycle"]
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    crowd: CrowdConfig = Field(default_factory=CrowdConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    stall_timeout_s: float = Field(default=10.0, gt=0, description="no frame this long: restart the stream")
    reconnect_min_s: float = Field(default=0.5, gt=0, description="first retry after a stream fails")
    reconnect_max_s: float = Field(
        default=2.0,
        gt=0,
        description="retries while a stream is down are at most this far apart, so a camera that comes "
        "back is seen again within it (a connect attempt costs the camera almost nothing)",
    )

    @model_validator(mode="after")
    def _distinct_ids(self) -> CameraConfig:
        # events name a zone or a line by its id alone (z): two of one id could not be told apart
        seen: set[str] = set()
        for kind, item in [("zone", z) for z in self.zones] + [("line", ln) for ln in self.lines]:
            if item.id in seen:
                raise ValueError(f"{kind} {item.id}: another zone or line has this id; give each its own")
            seen.add(item.id)
        return self

    @model_validator(mode="after")
    def _camera_password(self) -> CameraConfig:
        if self.password_file is None and self.password_env is None:
            return self
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("set password_file or password_env, not both")
        parts = urlsplit(self.source)
        if not parts.scheme or "://" not in self.source or not parts.username:
            raise ValueError(
                "password_file/password_env need a source URL that names the user, e.g. rtsp://admin@host/path"
            )
        if parts.password is not None:
            raise ValueError("the source URL has a password in it too: leave it out and keep it in the file")
        return self

    def source_url(self) -> str:
        """The source with the camera's password put in, read now (only for opening the stream)."""
        if self.password_file is None and self.password_env is None:
            return self.source
        if self.password_file is not None:
            try:
                password = self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"camera {self.id}: cannot read password_file {self.password_file}: {exc.strerror}"
                ) from None
        else:
            value = os.environ.get(self.password_env or "")
            if value is None:
                raise ValueError(f"camera {self.id}: environment variable {self.password_env} is not set")
            password = value
        parts = urlsplit(self.source)
        host = parts.netloc.rsplit("@", 1)[1]
        netloc = f"{parts.username}:{quote(password, safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc))

    @field_validator("zones", "masks")
    @classmethod
    def _unique_ids(
        cls, areas: list[ZoneConfig] | list[MaskConfig], info: ValidationInfo
    ) -> list[ZoneConfig] | list[MaskConfig]:
        ids = [a.id for a in areas]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            what = "zone" if info.field_name == "zones" else "mask"
            raise ValueError(f"{what} ids must be unique, repeated: {', '.join(dupes)}")
        return areas

    @field_validator("issues", mode="before")
    @classmethod
    def _over_defaults(cls, given: object) -> object:
        # A city names only what it changes: `[cameras.issues.garbage] min_dwell_s = 60` keeps the rest
        # of the garbage defaults (static, cooldown, ...) and the rules of every other class.
        if not isinstance(given, dict):
            return given
        merged: dict[str, object] = {k: v.model_dump() for k, v in default_issue_rules().items()}
        for label, rule in given.items():
            base = merged.get(label)
            if isinstance(rule, dict) and isinstance(base, dict):
                merged[label] = {**base, **rule}
            else:
                merged[label] = rule
        return merged

    @field_validator("confidence")
    @classmethod
    def _scores(cls, values: dict[str, float]) -> dict[str, float]:
        for label, value in values.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"confidence for {label!r} must be within 0..1, got {value}")
        return values


Provider = Literal["cpu", "cuda", "tensorrt", "openvino", "coreml", "rknpu"]


class VisionConfig(Section):
    """Settings of the ONNX engine, shared by every camera (one session per model)."""

    providers: list[Provider] = Field(
        default_factory=lambda: list[Provider](["cpu"]),
        description="execution providers in order of preference",
    )
    intra_op_threads: int = Field(default=0, ge=0, description="threads per inference; 0: one per core")
    inter_op_threads: int = Field(default=1, ge=1)
    warmup_runs: int = Field(default=2, ge=0)
    self_test: bool = Field(default=True, description="run each model's golden image at start")
    spinning: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="onnxruntime worker threads spin between runs: faster per frame, but they take the "
        "cores other cameras need; auto: on with one camera, off with several",
    )
