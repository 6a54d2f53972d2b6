"""A tour of the app in a real browser: upload a face, paint over the eyes, inpaint, do concept
arithmetic, interpolate.

Used by the browser test, and to make the screenshots in docs/:
  python -m ui.tour --out docs/screenshots        # launches the app with the default checkpoint
Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package (no browser download).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "faces" / "144513.jpg"
# seeds of the default model's samples: smiling women − neutral women + neutral men
CONCEPTS = {"a": "0, 6, 16", "b": "7, 9, 24", "c": "3, 17, 42"}


def tour(url: str, out: Path, photo: Path = EXAMPLE, timeout_ms: int = 300_000) -> list[Path]:
    """Drive the app at `url`; returns the screenshots written (inpaint, edit, model)."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#run")
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
        box = page.locator("#photo canvas").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.6  # the eyes of the example face
        page.mouse.move(x - 80, y)
        page.mouse.down()
        for step in range(1, 17):
            page.mouse.move(x - 80 + step * 10, y)
        page.mouse.up()
        page.locator("#run").click()
        page.wait_for_selector("#result img, .toast-body", timeout=timeout_ms)
        if page.locator(".toast-body").count():
            raise RuntimeError(f"the app reported: {page.locator('.toast-body').first.inner_text()}")
        page.wait_for_selector("#result img", timeout=timeout_ms)
        page.wait_for_timeout(500)
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
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ui.app import Models, find_checkpoints, serve

    app, url = serve(Models(find_checkpoints()), block=False)
    try:
        for shot in tour(url, Path(args.out)):
            print(f"wrote {shot}")
    finally:
        app.close()


if __name__ == "__main__":
    main()
