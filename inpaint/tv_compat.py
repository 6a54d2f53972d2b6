"""Import torchvision on a CPU-only torch whose PyPI torchvision wheel is a CUDA build.

That wheel's compiled operators cannot load beside the CPU torch and `import torchvision` fails
with "operator torchvision::nms does not exist" (pytorch/vision issue 9085). Its pure-Python parts
(transforms, utils.make_grid/save_image) work once the missing operator schemas are declared, so
this module declares them, only when the compiled library failed to load. Where the ops load
(a matching CUDA torch) it does nothing. Import torchvision only through `import_torchvision()`.
"""

from __future__ import annotations

import importlib
import types

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_fallback_library = None  # kept alive: the schemas vanish when the Library object is collected


def import_torchvision() -> types.ModuleType:
    """Return the torchvision module, declaring missing operator schemas first if needed."""
    global _fallback_library
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if "torchvision::nms does not exist" not in str(error):
            raise
    import sys

    import torch

    # The failed import left half-initialised modules behind; drop them before retrying.
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    _fallback_library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _fallback_library.define(schema)
    return importlib.import_module("torchvision")
