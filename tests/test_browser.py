"""A real browser (Debian's Chromium driven by Playwright) using the app as a person would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytest.importorskip("gradio", reason="the app needs gradio (not installed on this machine)")

from inpaint_ui.tour import CHROMIUM, tour  # noqa: E402

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it)"
)


def test_upload_paint_inpaint_interpolate(tiny_checkpoint_path, tmp_path):
    from inpaint_ui.app import Models, find_checkpoints, serve

    folder = tmp_path / "models" / "tiny"
    folder.mkdir(parents=True)
    shutil.copy(tiny_checkpoint_path, folder / "model.safetensors")
    app, url = serve(Models(find_checkpoints([folder])), block=False)
    try:
        shots = tour(url, tmp_path / "shots", timeout_ms=180_000)  # fails if no result appears
    finally:
        app.close()
    assert [s.name for s in shots] == ["inpaint-tab.png", "edit-tab.png", "model-tab.png"]
    assert all(s.stat().st_size > 10_000 for s in shots)
