"""A tour of the app in a real browser: upload a face, paint over the eyes, inpaint, do concept
arithmetic, interpolate; then (for the docs) paint over the astronaut's eyes and inpaint.

Used by the browser test, and to make the screenshots in docs/:
  python -m inpaint_ui.tour --out docs/screenshots        # launches the app with the default checkpoint
Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package (no browser download).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "faces" / "144513.jpg"
EXAMPLE_EYES = (0.22, 0.78, 0.52)  # a stroke over the eyes: from x, to x, at y, as fractions of the photo
ASTRONAUT = ROOT / "tests" / "data" / "astronaut.jpg"  # scikit-image's astronaut (NASA, public domain)
ASTRONAUT_EYES = (0.35, 0.54, 0.2)
# seeds of the default model's samples: smiling women − neutral women + neutral men
CONCEPTS = {"a": "0, 6, 16", "b": "7, 9, 24", "c": "3, 17, 42"}


def _stroke(canvas: dict, photo: Path, eyes: tuple[float, float, float]) -> tuple[float, float, float]:
    """Page coordinates (x from, x to, y) of a stroke given in fractions of the photo, which the
    editor shows fitted inside its canvas and centred."""
    from PIL import Image

    width, height = Image.open(photo).size
    scale = min(canvas["width"] / width, canvas["height"] / height)
    left = canvas["x"] + (canvas["width"] - width * scale) / 2
    top = canvas["y"] + (canvas["height"] - height * scale) / 2
    return left + eyes[0] * width * scale, left + eyes[1] * width * scale, top + eyes[2] * height * scale


def inpaint_photo(page, photo: Path, eyes: tuple[float, float, float], timeout_ms: int) -> None:
    """Upload a photo to the Inpaint tab, paint over its eyes, press Inpaint and wait for the result."""
    prompt = page.locator("#photo").get_by_text("Upload an image")
    upload = page.locator("#photo input[type=file]")
    for _ in range(10):  # an upload sent before the page has wired its handlers is lost: retry
        page.wait_for_timeout(1000)
        upload.set_input_files([])  # the same file twice would not count as a change
        upload.set_input_files(str(photo))
        page.wait_for_timeout(1500)
        if not prompt.is_visible():
            break
    if prompt.is_visible():
        raise RuntimeError("the photo never appeared in the editor")
    start, end, y = _stroke(page.locator("#photo canvas").first.bounding_box(), photo, eyes)
    page.mouse.move(start, y)
    page.mouse.down()
    for step in range(1, 17):
        page.mouse.move(start + (end - start) * step / 16, y)
    page.mouse.up()
    page.locator("#run").click()
    page.wait_for_selector("#result img, .toast-body", timeout=timeout_ms)
    if page.locator(".toast-body").count():
        raise RuntimeError(f"the app reported: {page.locator('.toast-body').first.inner_text()}")
    page.wait_for_selector("#result img", timeout=timeout_ms)
    page.wait_for_timeout(500)


def tour(
    url: str,
    out: Path,
    photo: Path = EXAMPLE,
    timeout_ms: int = 300_000,
    eyes=EXAMPLE_EYES,
    second: tuple[Path, tuple[float, float, float]] | None = None,
) -> list[Path]:
    """Drive the app at `url`; returns the screenshots written (inpaint, edit, model, and with
    `second` a further photo inpainted: inpaint-photo)."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#run")
        inpaint_photo(page, photo, eyes, timeout_ms)
        shots.append(out / "inpaint-tab.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        page.get_by_role("tab", name="Edit").click()
        page.locator("#show-samples").click()
        page.wait_for_selector("#samples img", timeout=timeout_ms)
        for box, seeds in CONCEPTS.items():
            page.locator(f"#concept-{box} textarea").fill(seeds)
        page.locator("#arithmetic").click()
        page.wait_for_selector("#equation img", timeout=timeout_ms)
        page.locator("#interpolate").click()
        page.wait_for_selector("#strip img", timeout=timeout_ms)
        page.wait_for_timeout(500)
        shots.append(out / "edit-tab.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        page.get_by_role("tab", name="Model").click()
        page.wait_for_timeout(1000)
        shots.append(out / "model-tab.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        if second is not None:
            page.goto(url)
            page.wait_for_selector("#run")
            inpaint_photo(page, *second, timeout_ms)
            shots.append(out / "inpaint-photo.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from inpaint_ui.app import Models, find_checkpoints, serve

    app, url = serve(Models(find_checkpoints()), block=False)
    try:
        for shot in tour(url, Path(args.out), second=(ASTRONAUT, ASTRONAUT_EYES)):
            print(f"wrote {shot}")
    finally:
        app.close()


if __name__ == "__main__":
    main()
