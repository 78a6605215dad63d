"""On-device vision: sources, preprocessing, the ONNX engine, adapters, tracking, zones and rules."""

import os

# OpenCV and its FFmpeg backend print to stderr on every failed connect ("Connection refused",
# "[ WARN:0] ... can't be used to capture by name"): a camera retried every 2 s would flood the
# journal. Our own log says what failed; set these variables to see OpenCV's again.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
