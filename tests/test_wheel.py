"""The built wheel on its own: installed into a fresh virtual environment (away from the source
tree), it fills a face with the default model it carries and its app finds the example faces.

The fresh environment gets the project's dependencies (torch, OpenCV, Gradio…) from this one's
site-packages through a path file, not from the network; only the wheel is installed into it, so
everything of the project it runs comes from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(ROOT),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        cwd=out,
    )
    assert built.returncode == 0, built.stderr
    [path] = out.glob("inpaint-*.whl")
    return path


def test_the_wheel_holds_the_model_and_the_examples_under_unambiguous_names(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"inpaint", "inpaint_training", "inpaint_ui", "inpaint_data"}  # no bare `training` or `ui`
    assert "inpaint_data/celeba64/model.safetensors" in names
    assert len([n for n in names if n.startswith("inpaint_data/faces/") and n.endswith(".jpg")]) == 16
    assert "inpaint_ui/upload_guard.js" in names


def test_a_fresh_environment_with_only_the_wheel_fills_a_face_and_serves_the_examples(wheel, tmp_path):
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    site = Path(
        _run(
            str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
        ).stdout.strip()
    )
    installed = _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        str(wheel),
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr
    # The dependencies only: this environment's site-packages as a plain path (its .pth files, and
    # with them the editable install of the source tree, are not read from there).
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    face = np.asarray(Image.open(ROOT / "examples" / "faces" / "142124.jpg").convert("RGB"))
    Image.fromarray(face).save(work / "face.png")
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    where = _run(
        str(python),
        "-c",
        "import inpaint, inpaint.assets as a; print(inpaint.__file__); print(a.default_checkpoint())",
        cwd=work,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    module, checkpoint = where.stdout.split()
    assert str(venv) in module and str(venv) in checkpoint  # the wheel's copies, not the source tree's
    filled = _run(
        str(venv / "bin" / "inpaint"),
        "fill",
        "face.png",
        "--mask-kind",
        "centre",
        "--out",
        "filled.png",
        cwd=work,
        env=env,
    )
    assert filled.returncode == 0, filled.stderr
    result = np.asarray(Image.open(work / "filled.png"))
    assert result.shape == face.shape and not np.array_equal(result, face)
    examples = _run(
        str(python),
        "-c",
        "from inpaint_ui.app import EXAMPLES, find_checkpoints; print(len(EXAMPLES), list(find_checkpoints()))",
        cwd=work,
        env=env,
    )
    assert examples.returncode == 0, examples.stderr
    assert examples.stdout.split()[0] == "16" and "celeba64" in examples.stdout
