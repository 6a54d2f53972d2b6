"""The one folder where the app writes the files it hands to Gradio (downloads, animations).

Gradio copies each returned file into its own cache (which `delete_cache` empties), so a file here
is needed only until the request that made it has been answered: each new file removes those older
than `keep_seconds`, and the folder goes when the process exits (or on remove()). Before, every
request made its own /tmp/inpaint-* folder and none was ever removed.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from PIL import Image


class Scratch:
    def __init__(self, keep_seconds: float = 600.0) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="inpaint-app-"))
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()
        atexit.register(self.remove)

    def path(self, stem: str, suffix: str) -> Path:
        """A new file's path, unique (requests run at once) but named `stem` for the download."""
        self.prune()
        self.folder.mkdir(parents=True, exist_ok=True)  # gone if something cleaned /tmp meanwhile
        return self.folder / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"

    def save_png(self, image: Image.Image, stem: str) -> str:
        path = self.path(stem, ".png")
        image.save(path)
        return str(path)

    def prune(self, now: float | None = None) -> None:
        """Remove the files older than keep_seconds (long since copied into Gradio's cache)."""
        cutoff = (time.time() if now is None else now) - self.keep_seconds
        with self._lock:
            for file in self.folder.glob("*") if self.folder.is_dir() else []:
                try:
                    if file.stat().st_mtime < cutoff:
                        file.unlink()
                except FileNotFoundError:
                    continue

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
