"""Where the shipped files are: the default face checkpoint and the example faces.

In a source checkout they are the repository's top-level `checkpoints/` and `examples/faces/`
folders (the user-facing ones: retrain, export there). An installed wheel carries copies as
package data (`inpaint_data.celeba64`, `inpaint_data.faces`; see pyproject.toml), found through
importlib when the source folders are not there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NAME = "celeba64"


def _installed(package: str) -> Path | None:
    """The folder an installed data package lies in (wheels install unpacked), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations and Path(locations[0]).is_dir() else None


def checkpoints_folder() -> Path | None:
    """The folder of shipped checkpoints (each a subfolder with model.safetensors), or None."""
    source = SOURCE_ROOT / "checkpoints"
    if (source / DEFAULT_NAME / "model.safetensors").is_file():
        return source
    installed = _installed(f"inpaint_data.{DEFAULT_NAME}")
    return installed.parent if installed is not None else None


def default_checkpoint() -> Path:
    """The shipped default face checkpoint's folder (it may be missing: callers say so)."""
    folder = checkpoints_folder()
    return (folder or SOURCE_ROOT / "checkpoints") / DEFAULT_NAME


def example_faces() -> list[Path]:
    """The bundled example faces (16 held-out CelebA photos), sorted; [] when absent."""
    source = SOURCE_ROOT / "examples" / "faces"
    folder = source if source.is_dir() else _installed("inpaint_data.faces")
    return sorted(folder.glob("*.jpg")) if folder is not None else []
