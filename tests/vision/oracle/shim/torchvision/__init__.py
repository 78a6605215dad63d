"""Stand-in for torchvision where only a CUDA build is installable next to a CPU torch.

Ultralytics imports torchvision only for ``ops.nms``; this forwards to Ultralytics' own pure-torch
NMS (documented as matching torchvision exactly), so the oracle's decode stays Ultralytics' code,
and exports it to ONNX as torchvision does (``NonMaxSuppression``).
"""

__version__ = "0.28.0"
from . import ops  # noqa: F401
