"""The app under bad input and load: uploads too large, not images, truncated or of too many pixels;
numbers that are not numbers or out of range; files left behind; Stop; a full queue. Each refusal
must be one clear line on the page (the client's exception) and on the console, never a traceback."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytest.importorskip("gradio", reason="the app needs gradio (not installed on this machine)")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.utils import QueueError, Status  # noqa: E402

import inpaint_ui.app  # noqa: E402
from inpaint.images import header_size  # noqa: E402
from inpaint.search import SearchProgress  # noqa: E402
from inpaint_ui.app import Models, find_checkpoints, serve, stopped_status  # noqa: E402
from inpaint_ui.checks import APP_MAX_PIXELS, MAX_UPLOAD_BYTES, check_upload  # noqa: E402
from inpaint_ui.scratch import Scratch  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "faces" / "142124.jpg"
MODEL = "run: tiny"
SEED_TEXT = "9,223,372,036,854,775,807"


def _tiny_models(tiny_checkpoint_path: Path, folder: Path) -> Models:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_checkpoint_path, folder / "model.safetensors")
    return Models(find_checkpoints([folder]))


@pytest.fixture(scope="module")
def server(tiny_checkpoint_path, tmp_path_factory):
    """A launched app whose temporary files go to a folder of the test's own (tempfile.tempdir)."""
    temp = tmp_path_factory.mktemp("tempdir")
    models = _tiny_models(tiny_checkpoint_path, tmp_path_factory.mktemp("models") / "tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(temp))
        app, url = serve(models, block=False)
        try:
            yield app, Client(url, verbose=False), temp
        finally:
            app.close()
            app.scratch.remove()


@pytest.fixture(scope="module")
def client(server):
    return server[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Uploads of every bad kind, and a good photo and painted layer."""
    folder = tmp_path_factory.mktemp("files")
    face = Image.open(EXAMPLE).convert("RGB")
    face.save(folder / "background.png")
    layer = np.zeros((face.height, face.width, 4), np.uint8)
    layer[40:55, 15:75] = 255
    Image.fromarray(layer).save(folder / "layer.png")
    (folder / "notes.png").write_text("not an image")
    (folder / "page.html").write_text("<html><script>alert(1)</script></html>")
    (folder / "empty.png").write_bytes(b"")
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (folder / "huge.png").write_bytes(_png_header(30000, 30000))
    Image.new("L", (10000, 10000)).save(folder / "bomb.png")  # 97 KB on disk, 100 megapixels decoded
    return folder


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height and holds almost nothing (what a hostile upload looks like)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def _editor(files: Path, background: str = "background.png", layer: str = "layer.png") -> dict:
    return {
        "background": handle_file(str(files / background)),
        "layers": [handle_file(str(files / layer))],
        "composite": handle_file(str(files / "background.png")),
    }


def _inpaint(client, value, preset="painted", iterations=10, restarts=1, lam=0.003, seed=0, init="auto"):
    return client.predict(
        MODEL, value, preset, "auto", "", iterations, restarts, lam, seed, True, init, api_name="/inpaint"
    )


def _arithmetic(a: str, b: str, c: str, photo=None, variations=3, noise=0.2) -> tuple:
    """The /arithmetic endpoint's inputs: seeds of A, B and C, a photo for A."""
    return (MODEL, a, b, c, photo, None, None, variations, noise)


def _raw_call(client, api_name: str, data: list) -> tuple[str, str]:
    """Call an endpoint with a raw JSON body, as any HTTP client may send it (NaN and Infinity as JSON
    tokens, which gradio_client will not send); returns the answer's last event and its data (an
    error's message)."""
    import httpx

    call = client.src.rstrip("/") + "/gradio_api/call/" + api_name
    event = httpx.post(
        call, content=json.dumps({"data": data}), headers={"Content-Type": "application/json"}, timeout=60
    )
    lines = httpx.get(f"{call}/{event.json()['event_id']}", timeout=120).text.strip().splitlines()
    kind, data = lines[-2].removeprefix("event: "), json.loads(lines[-1].removeprefix("data: "))
    return kind, data["error"] if kind == "error" and isinstance(data, dict) else json.dumps(data)


def _uploaded(client, path: Path) -> dict:
    """A file sent to the server's upload route, as the page sends it: the FileData naming it there."""
    import httpx

    with open(path, "rb") as handle:
        answer = httpx.post(
            client.src.rstrip("/") + "/gradio_api/upload", files=[("files", (path.name, handle))], timeout=60
        )
    server_path = answer.json()[0]
    return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def _one_line_refusal(captured: str, message: str) -> None:
    """The console shows the refusal as one line, and no traceback."""
    assert "Traceback" not in captured, captured
    lines = [line for line in captured.splitlines() if line.startswith("refused: ")]
    assert len(lines) == 1 and message in lines[0], captured


# --- Uploads ---------------------------------------------------------------------------------------

UPLOAD_REFUSALS = [
    ("notes.png", "notes.png: not an image (JPEG, PNG"),
    ("page.html", "page.html: not an image file (JPEG, PNG"),
    ("empty.png", "empty.png: empty file"),
    ("truncated.jpg", "truncated.jpg: corrupt or truncated image"),
    ("huge.png", "huge.png: image too large (30000×30000 = 900 megapixels; at most 40 megapixels)"),
    ("bomb.png", "bomb.png: image too large (10000×10000 = 100 megapixels; at most 40 megapixels)"),
]


@pytest.mark.parametrize("name, message", UPLOAD_REFUSALS)
def test_bad_photos_are_refused_with_one_line_naming_the_problem(client, files, capfd, name, message):
    capfd.readouterr()
    with pytest.raises(Exception, match=re.escape(message)) as refusal:
        _inpaint(client, _editor(files, background=name))
    assert "Could not preprocess" not in str(refusal.value)
    _one_line_refusal(capfd.readouterr().err, message)
    problem = re.escape(message.split(" (")[0])
    with pytest.raises(Exception, match=problem):  # the Edit tab's photos are checked the same way
        client.predict(*_arithmetic("", "3", "4", handle_file(str(files / name))), api_name="/arithmetic")
    with pytest.raises(Exception, match=problem):  # and the painted layers
        _inpaint(client, _editor(files, layer=name))


def test_images_over_the_pixel_budget_are_never_decoded(client, files, monkeypatch):
    decoded = []
    load = ImageFile.ImageFile.load

    def spy(image):
        decoded.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    with pytest.raises(Exception, match="10000×10000"):
        _inpaint(client, _editor(files, background="bomb.png"))
    with pytest.raises(Exception, match="30000×30000"):
        client.predict(*_arithmetic("", "3", "4", handle_file(str(files / "huge.png"))), api_name="/arithmetic")
    assert not [size for size in decoded if size[0] * size[1] > APP_MAX_PIXELS], decoded


def test_header_checks_without_the_server(files):
    assert header_size(files / "bomb.png") == ("PNG", (10000, 10000))
    assert header_size(files / "notes.png") is None
    assert header_size(_png_header(64, 48)) == ("PNG", (64, 48))  # bytes, as the editor's blobs come
    big = files / "big.png"
    with open(big, "wb") as handle:
        handle.write(_png_header(64, 48))
        handle.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(Exception, match=r"big.png: too large \(20.0 MB, limit 20 MB\)"):
        check_upload(big, "big.png")
    with pytest.raises(Exception, match="gone"):
        check_upload(files / "missing.png", "missing.png")


def test_the_page_checks_a_file_before_sending_it(client):
    import httpx

    page = httpx.get(client.src, timeout=30).text
    assert 'id="upload-refused"' not in page  # the banner is made only when needed
    assert f"const LIMIT_BYTES = {MAX_UPLOAD_BYTES};" in page and "too large (" in page and "not an image file" in page


# --- Numbers ---------------------------------------------------------------------------------------

NUMBER_REFUSALS = [
    ({"iterations": float("nan")}, "Iterations: must be a finite number, got nan"),
    ({"iterations": 2005}, "Iterations: must be a whole number from 0 to 2,000, got 2005"),
    ({"restarts": 0}, "Starts: must be a whole number from 1 to 32, got 0"),
    ({"restarts": 2.5}, "Starts: must be a whole number, got 2.5"),
    ({"lam": "abc"}, "λ: must be a number, got 'abc'"),
    ({"lam": float("inf")}, "λ: must be a finite number, got inf"),
    ({"lam": -1}, "λ: must be a number from 0 to 10, got -1"),
    ({"seed": -1, "preset": "random"}, f"Seed: must be a whole number from 0 to {SEED_TEXT}, got -1"),
    ({"seed": 10**30}, f"Seed: must be a whole number from 0 to {SEED_TEXT}, got {10**30}"),
    ({"seed": float("nan")}, "Seed: must be a finite number, got nan"),
    ({"preset": "bogus"}, "Mask: must be one of painted, "),
    ({"init": "bogus"}, "Search starts from: must be one of auto, "),
]


@pytest.fixture(scope="module")
def raw_photo(client, files) -> dict:
    photo = _uploaded(client, files / "background.png")
    return {"background": photo, "layers": [_uploaded(client, files / "layer.png")], "composite": photo}


@pytest.mark.parametrize("change, message", NUMBER_REFUSALS)
def test_inpaint_refuses_bad_numbers_with_one_line(client, raw_photo, capfd, change, message):
    values = {"preset": "painted", "iterations": 10, "restarts": 1, "lam": 0.003, "seed": 0, "init": "auto"}
    values |= {"adapt_steps": 0, **change}  # a raw call gets no defaults: every parameter is sent
    capfd.readouterr()
    answer = _raw_call(
        client,
        "inpaint",
        [
            MODEL,
            raw_photo,
            values["preset"],
            "auto",
            "",
            values["iterations"],
            values["restarts"],
            values["lam"],
            values["seed"],
            True,
            values["init"],
            values["adapt_steps"],
        ],
    )
    assert answer[0] == "error" and message in answer[1], answer
    _one_line_refusal(capfd.readouterr().err, message)


def test_raw_calls_with_good_values_still_work(client, raw_photo):
    answer = _raw_call(client, "inpaint", [MODEL, raw_photo, "painted", "auto", "", 10, 1, 0.003, 0, True, "auto", 0])
    assert answer[0] == "complete" and "Done in" in answer[1], answer


EDIT_REFUSALS = [
    ("/samples", (MODEL, float("nan"), 4), "First seed: must be a finite number"),
    ("/samples", (MODEL, 0, 1000), "Samples: must be a whole number from 4 to 48, got 1000"),
    ("/samples", (MODEL, 2**63 - 2, 8), "First seed: must be a whole number from 0 to"),
    ("/arithmetic", _arithmetic("1", "2", "3", variations=float("nan")), "Variations: must be a finite number"),
    ("/arithmetic", _arithmetic("1", "2", "3", noise=2.0), "Variation noise: must be a number from 0 to 1, got 2.0"),
    ("/arithmetic", _arithmetic("-5", "2", "3"), "Concept A: seeds: each seed: must be a whole number from 0 to"),
    ("/arithmetic", _arithmetic(str(10**30), "2", "3"), "each seed: must be a whole number from 0 to"),
    ("/arithmetic", _arithmetic("1", "x", "3"), "Concept B: seeds: each seed: must be a whole number, got 'x'"),
    ("/arithmetic", _arithmetic("1, " * 300, "2", "3"), "Concept A: seeds: 300 seeds; at most 256"),
    ("/arithmetic", _arithmetic("", "2", "3"), "Concept A: needs seeds (e.g. 3, 17, 42) or a photo"),
    ("/interpolate", (MODEL, "0", "1", float("inf"), "slerp"), "Frames: must be a finite number"),
    ("/interpolate", (MODEL, "0", "1", 100, "slerp"), "Frames: must be a whole number from 3 to 24, got 100"),
    ("/interpolate", (MODEL, "abc", "1", 5, "slerp"), "From: each seed: must be a whole number, got 'abc'"),
    ("/interpolate", (MODEL, "0", "", 5, "slerp"), "To: needs a seed"),
    ("/interpolate", (MODEL, "0", "1", 5, "spiral"), "Path: must be one of slerp, lerp"),
]


@pytest.mark.parametrize("endpoint, args, message", EDIT_REFUSALS)
def test_edit_endpoints_refuse_bad_values_with_one_line(client, capfd, endpoint, args, message):
    capfd.readouterr()
    answer = _raw_call(client, endpoint.strip("/"), list(args))
    assert answer[0] == "error" and message in answer[1], answer
    _one_line_refusal(capfd.readouterr().err, message)


def test_a_refusal_is_shown_as_text_not_html(client, capfd):
    with pytest.raises(Exception) as refusal:
        client.predict(*_arithmetic("<img src=x onerror=alert(1)>", "2", "3"), api_name="/arithmetic")
    assert "<img" not in str(refusal.value) and "&lt;img" in str(refusal.value)


# --- Files left behind -----------------------------------------------------------------------------


def test_requests_do_not_leave_a_folder_each(server, files):
    app, client, temp = server
    before = sorted(p.name for p in temp.glob("inpaint-*"))
    files_before = len(list(app.scratch.folder.iterdir()))
    for seed in range(3):
        download = _inpaint(client, _editor(files), seed=seed)[4]
        assert Image.open(download).size == Image.open(EXAMPLE).size
    for frames in (3, 4):
        animation = client.predict(MODEL, "0", "1", frames, "slerp", api_name="/interpolate")[1]
        assert Image.open(animation).n_frames >= frames
    folders = sorted(p.name for p in temp.glob("inpaint-*"))
    assert folders == before == [app.scratch.folder.name], folders  # the app's one folder, made at start
    assert len(list(app.scratch.folder.iterdir())) == files_before + 5
    app.scratch.prune(now=time.time() + app.scratch.keep_seconds + 1)  # old files go as new ones are made
    assert not list(app.scratch.folder.iterdir())


def test_scratch_prunes_old_files_and_goes_at_exit(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    scratch = Scratch(keep_seconds=60)
    old = Path(scratch.save_png(Image.new("RGB", (4, 4)), "inpainted"))
    assert old.name.startswith("inpainted-") and old.parent == scratch.folder
    os.utime(old, (time.time() - 120, time.time() - 120))
    new = Path(scratch.save_png(Image.new("RGB", (4, 4)), "inpainted"))
    assert not old.exists() and new.exists()
    scratch.remove()
    assert not scratch.folder.exists()
    assert Path(scratch.save_png(Image.new("RGB", (4, 4)), "again")).exists()  # a removed folder is made again
    scratch.remove()


def test_gradio_cache_is_cleaned_on_a_schedule(server):
    app = server[0]
    assert app.delete_cache == inpaint_ui.app.CACHE_CLEANUP


# --- Stop ------------------------------------------------------------------------------------------


def test_the_status_line_adds_only_the_notes_it_does_not_already_say():
    from inpaint.engine import NO_FACE_NOTE, NOT_ADAPTED_NOTE, FillResult
    from inpaint_ui.app import notes_for_status

    image = Image.new("RGB", (8, 8))

    def result(framing: str, notes: list[str]) -> FillResult:
        return FillResult(image, None, [image], 0.0, 0.0, [0.0], None, framing, 0.0, notes)

    enlarged = "the model draws 64×64 pixels; this face's square is 300 pixels wide, so the fill is enlarged"
    assert notes_for_status(result("face", [enlarged]), framed=True) == ""  # the framing text says it
    assert notes_for_status(result("classical", [NO_FACE_NOTE]), framed=False) == ""  # so it does here
    assert notes_for_status(result("classical", [NO_FACE_NOTE]), framed=True) == f"\n\nNote: {NO_FACE_NOTE}."
    skipped = NOT_ADAPTED_NOTE.format(how="whole")
    assert notes_for_status(result("whole", [skipped]), framed=True) == f"\n\nNote: {skipped}."
    done = "framing\n\nDone in 1.2 s: 3.0% of the photo filled." + notes_for_status(result("whole", [skipped]), True)
    assert stopped_status(done) == done  # a finished fill's status is never turned into "Stopped"


def test_stopped_status_replaces_the_iteration_count():
    framing = "The model sees the green square (aligned face: 80 px wide, turned +0°) and draws it at **32×32 pixels**."
    running = f"{framing}\n\nIteration 75 / 2000: context loss 12.34"
    assert stopped_status(running) == f"{framing}\n\nStopped at iteration 75 / 2000."
    assert stopped_status(stopped_status(running)) == stopped_status(running)
    assert stopped_status(framing) == f"{framing}\n\nStopped."
    done = f"{framing}\n\nDone in 1.2 s: 3.0% of the photo filled."
    assert stopped_status(done) == done
    assert stopped_status(None) == "Stopped."


class _SlowSearch:
    """Stands in for the engine: reports progress every 50 ms until told to stop (the callback's answer)."""

    def __init__(self) -> None:
        self.stopped_at: int | None = None
        self.started = threading.Event()
        self.calls = 0

    def __call__(self, checkpoint, items, request, callback, iterations=2000):
        self.calls += 1
        size, channels = checkpoint.config.image_size, checkpoint.config.channels
        for iteration in range(1, iterations + 1):
            time.sleep(0.05)
            self.started.set()
            progress = SearchProgress(
                iteration,
                iterations,
                torch.ones(1),
                torch.zeros(1, channels, size, size),
                torch.ones(1, 1),
                torch.zeros(1, 1, channels, size, size),
                1,
            )
            if callback(progress):
                self.stopped_at = iteration
                break
        raise RuntimeError("not meant to finish")


def test_stop_button_says_stopped_and_ends_the_search(server, client, files, monkeypatch):
    app = server[0]
    ids = {c["props"].get("elem_id"): c["id"] for c in app.config["components"]}
    dependencies = app.config["dependencies"]

    def on(elem_id: str) -> list[dict]:
        return [d for d in dependencies if [ids[elem_id], "click"] in [list(t) for t in d["targets"]]]

    [stop] = on("stop")
    assert stop["backend_fn"] and stop["queue"] is False  # at once, even when the queue is full
    [then] = [d for d in dependencies if d["trigger_after"] == stop["id"]]
    assert "cancel-waiting" in then["js"]  # then the page cancels a request still waiting, if none ran
    assert [on("run")[0]["id"]] in [d["cancels"] for d in on("cancel-waiting")]
    search = _SlowSearch()
    monkeypatch.setattr(inpaint_ui.app, "fill_images", search)
    job = client.submit(
        MODEL, _editor(files), "painted", "auto", "", 2000, 1, 0.003, 0, True, "auto", api_name="/inpaint"
    )
    assert search.started.wait(60)
    time.sleep(0.3)
    job.cancel()
    for _ in range(100):
        if search.stopped_at:
            break
        time.sleep(0.1)
    assert search.stopped_at is not None and search.stopped_at < 2000  # the search thread was told to stop
    assert client.predict(MODEL, api_name="/describe_model")[0]  # and the app answers


# --- Load ------------------------------------------------------------------------------------------


class _GatedModels(Models):
    """Models whose get() waits for the gate: requests stay running until the test opens it."""

    def __init__(self, choices) -> None:
        super().__init__(choices)
        self.gate = threading.Event()
        self.armed = False  # building the app asks for the default model too
        self.waiting = 0
        self._count = threading.Lock()

    def get(self, name):
        if self.armed:
            with self._count:
                self.waiting += 1
            self.gate.wait(120)
        return super().get(name)


def _wait_for(condition, seconds: float = 60) -> bool:
    end = time.time() + seconds
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_full_queue_refuses_clearly_and_the_waiting_see_their_place(tiny_checkpoint_path, tmp_path, files):
    models = _GatedModels(_tiny_models(tiny_checkpoint_path, tmp_path / "tiny").choices)
    app, url = serve(models, block=False, queue_size=1)
    models.armed = True
    try:
        client = Client(url, verbose=False)
        args = (MODEL, _editor(files), "painted", "auto", "", 10, 1, 0.003, 0, True, "auto")
        running = [client.submit(*args, api_name="/inpaint") for _ in range(inpaint_ui.app.CONCURRENCY)]
        assert _wait_for(lambda: models.waiting == inpaint_ui.app.CONCURRENCY)
        waiting = client.submit(*args, api_name="/inpaint")
        assert _wait_for(lambda: waiting.status().code == Status.IN_QUEUE and waiting.status().rank is not None)
        assert waiting.status().rank == 0  # its place in the queue, shown on the page with the estimated wait
        refused = [client.submit(*args, api_name="/inpaint") for _ in range(2)]
        for job in refused:
            with pytest.raises(QueueError, match="Queue is full"):
                job.result(timeout=60)
        models.gate.set()
        for job in running + [waiting]:
            assert "Done in" in job.result(timeout=120)[5]
        assert "DCGAN 32×32" in client.predict(MODEL, api_name="/describe_model")[0]  # the app answers afterwards
    finally:
        models.gate.set()
        app.close()
        app.scratch.remove()


# --- In a browser ----------------------------------------------------------------------------------


def _chromium() -> str | None:
    from inpaint_ui.tour import CHROMIUM

    try:
        import playwright  # noqa: F401
    except ImportError:
        return None
    return CHROMIUM if Path(CHROMIUM).exists() else None


@pytest.mark.skipif(
    _chromium() is None, reason="Debian's chromium or playwright is not installed (make test installs them)"
)
def test_in_a_browser_bad_files_are_refused_at_once_and_stop_says_stopped(server, files, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from inpaint_ui.tour import ARGS

    url = server[1].src
    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.write(_png_header(64, 48))
        handle.truncate(21 * 1024 * 1024)
    search = _SlowSearch()
    monkeypatch.setattr(inpaint_ui.app, "fill_images", search)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            uploads = []
            page.on("request", lambda request: uploads.append(request.url) if "upload" in request.url else None)
            page.goto(url)
            page.wait_for_selector("#run")
            page.wait_for_timeout(1000)
            upload = page.locator("#photo input[type=file]")
            banner = page.locator("#upload-refused")
            started = time.time()
            upload.set_input_files(str(big))
            banner.wait_for(timeout=5000)
            assert banner.inner_text() == "big.png: too large (21.0 MB, limit 20 MB)" and time.time() - started < 5
            refusals = [
                ("page.html", "page.html: not an image file (JPEG, PNG"),
                ("bomb.png", "bomb.png: image too large (10000×10000 = 100 megapixels; at most 40 megapixels)"),
            ]
            for name, message in refusals:
                upload.set_input_files(str(files / name))
                page.wait_for_function(
                    f"document.getElementById('upload-refused').textContent.startsWith('{name}')", timeout=5000
                )
                assert banner.inner_text().startswith(message)
            assert not uploads, uploads  # nothing was sent
            assert page.locator("#photo").get_by_text("Upload an image").is_visible()  # the editor holds no photo

            for _ in range(10):  # an upload sent before the page has wired its handlers is lost: retry
                upload.set_input_files([])
                upload.set_input_files(str(EXAMPLE))
                page.wait_for_timeout(1500)
                if not page.locator("#photo").get_by_text("Upload an image").is_visible():
                    break
            page.get_by_label("centre").check()
            page.locator("#run").click()
            status = page.locator("#status")
            page.wait_for_function("document.getElementById('status').innerText.includes('Iteration')", timeout=60000)
            page.locator("#stop").click()
            page.wait_for_function(
                "document.getElementById('status').innerText.includes('Stopped at iteration')", timeout=10000
            )
            page.wait_for_timeout(1500)  # no late progress overwrites it
            assert "Stopped at iteration" in status.inner_text() and "context loss" not in status.inner_text()
            assert _wait_for(lambda: search.stopped_at is not None, 10)

            # Stop while waiting in the queue behind two running requests: the request is cancelled, never run.
            client = server[1]
            busy = [
                client.submit(
                    MODEL, _editor(files), "painted", "auto", "", 2000, 1, 0.003, 0, True, "auto", api_name="/inpaint"
                )
                for _ in range(inpaint_ui.app.CONCURRENCY)
            ]
            assert _wait_for(lambda: search.calls == 1 + inpaint_ui.app.CONCURRENCY)
            page.locator("#run").click()
            page.wait_for_timeout(2000)
            page.locator("#stop").click()
            page.wait_for_timeout(1000)
            for job in busy:
                job.cancel()
            page.wait_for_timeout(3000)
            assert search.calls == 1 + inpaint_ui.app.CONCURRENCY  # the waiting request never started

            page.get_by_role("tab", name="Edit").click()  # the Edit tab's checked fields work in a page too
            page.locator("#show-samples").click()
            page.wait_for_selector("#samples img", timeout=60000)
            page.locator("#interpolate").click()
            page.wait_for_selector("#strip img", timeout=60000)
            assert not page.locator(".toast-body").count()
        finally:
            browser.close()
