"""The app as a user meets it: the astronaut portrait (512×512) with its eyes painted over, sent to
the Inpaint endpoint of a freshly started app with the default settings, timed from request to
finished result (face finding, search, warping back, detail, blending, PNG encoding and transfer
included). The first request after start-up is timed apart (it loads the model).

  python benchmarks/app_latency.py [--checkpoint C] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client, handle_file  # noqa: E402

from inpaint.checkpoint import checkpoint_or_default, resolve_checkpoint_path  # noqa: E402
from inpaint.device import limit_cpu_threads  # noqa: E402
from inpaint.search import SearchSettings, resolve_settings  # noqa: E402
from inpaint_ui.app import CONCURRENCY, Models, find_checkpoints, serve  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASTRONAUT = ROOT / "tests" / "data" / "astronaut.jpg"
EYES = (slice(92, 124), slice(172, 278))  # a bar over both eyes


def astronaut_request(folder: Path, checkpoint: str | None) -> tuple[Models, tuple, SearchSettings]:
    """The app's models (the checkpoint alone, under a temporary folder) and the Inpaint endpoint's
    arguments for the astronaut with its eyes painted over, at the model's default search."""
    model_folder = folder / "model"
    model_folder.mkdir()
    shutil.copy(resolve_checkpoint_path(checkpoint_or_default(checkpoint)), model_folder / "model.safetensors")
    models = Models(find_checkpoints([model_folder]))
    name = next(iter(models.choices))
    settings = resolve_settings(models.get(name), SearchSettings())
    photo = Image.open(ASTRONAUT).convert("RGB")
    photo.save(folder / "background.png")
    layer = np.zeros((photo.height, photo.width, 4), np.uint8)
    layer[EYES] = 255
    Image.fromarray(layer).save(folder / "layer.png")
    background = handle_file(str(folder / "background.png"))
    value = {"background": background, "layers": [handle_file(str(folder / "layer.png"))], "composite": background}
    arguments = (
        name,
        value,
        "painted",
        "auto",
        "",
        settings.iterations,
        settings.restarts,
        settings.lam,
        0,
        True,
        "auto",
    )
    return models, arguments, settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    threads = limit_cpu_threads(concurrent=CONCURRENCY)  # as `inpaint app` does
    with tempfile.TemporaryDirectory() as tmp:
        models, arguments, settings = astronaut_request(Path(tmp), args.checkpoint)
        app, url = serve(models, block=False)
        try:
            client = Client(url, verbose=False)
            print(
                f"astronaut 512×512, eyes painted over; {settings.init} start, "
                f"{settings.iterations} iterations × {settings.restarts} "
                f"starts (early stop after {settings.patience}); {threads} threads per search"
            )
            for attempt in range(args.repeats + 1):
                started = time.perf_counter()
                outputs = client.predict(*arguments, api_name="/inpaint")
                seconds = time.perf_counter() - started
                status = outputs[5].splitlines()[-1]
                print(
                    f"{'first request (loads the model)' if attempt == 0 else f'request {attempt}'}: "
                    f"{seconds:.2f} s; status: {status}"
                )
        finally:
            app.close()


if __name__ == "__main__":
    main()
