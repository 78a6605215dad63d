"""Model adapters: raw ONNX outputs → ``Detections`` (or a ``DensityMap``), chosen by the manifest.

An adapter is a function registered under a name with ``@adapter("name")``, in a module of this
package with the same name; the manifest's ``adapter`` field picks it, and the module is imported
on first use. Adding a layout is one new module here and nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable, Sequence

import numpy as np

from ..detections import DensityMap, Detections
from ..manifest import ModelManifest
from ..preprocess import Letterbox

Adapter = Callable[[Sequence[np.ndarray], Letterbox, ModelManifest], Detections | DensityMap]

_ADAPTERS: dict[str, Adapter] = {}


class AdapterError(ValueError):
    """Model outputs that do not fit the adapter the manifest names; the message says how."""


def adapter(name: str) -> Callable[[Adapter], Adapter]:
    def register(func: Adapter) -> Adapter:
        _ADAPTERS[name] = func
        return func

    return register


def get_adapter(name: str) -> Adapter:
    if name not in _ADAPTERS:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise AdapterError(f"adapter name {name!r} is not a valid module name")
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(f"{__name__}.{name}")
    try:
        return _ADAPTERS[name]
    except KeyError:
        raise AdapterError(
            f"no adapter named {name!r}; known: {', '.join(sorted(known_adapters()))}. "
            "Fix the manifest's 'adapter' field or add a module to agent/vision/adapters/"
        ) from None


def known_adapters() -> list[str]:
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return sorted(_ADAPTERS)
