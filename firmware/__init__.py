"""CPython side of the firmware: makes ``streetfw`` (the name the board imports it by) the very same
modules as ``firmware.streetfw``, so an integrator's driver written for the board
(``from streetfw.sensor import Sensor, register``) registers with the simulated board's firmware too.
Not part of a bundle: boards import ``streetfw`` from /fw/<version>."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType


class _StreetfwAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name == "streetfw" or name.startswith("streetfw."):
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module("firmware." + spec.name)

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its firmware.* name


if not any(isinstance(f, _StreetfwAlias) for f in sys.meta_path):
    sys.meta_path.insert(0, _StreetfwAlias())  # ahead of the path finders, which would load a second copy
