"""Photos of any size through the engine, and the `inpaint fill` / `inpaint batch` commands."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaint.batch import plan_jobs, run_batch
from inpaint.checkpoint import load_checkpoint
from inpaint.cli import main
from inpaint.engine import FillRequest, fill_images
from inpaint.masks import MaskSource
from inpaint.search import SearchSettings

FAST = SearchSettings(iterations=5, restarts=2, top_k=2)
FAST_ARGS = ["--iterations", "5", "--restarts", "2"]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_path):
    return load_checkpoint(tiny_checkpoint_path)


def photo(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(array[..., 0] if channels == 1 else array, mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("size", [(32, 32), (150, 90), (70, 200)])
def test_crop_and_paste_changes_only_the_hole_and_keeps_size_and_mode(checkpoint, mode, size):
    image = photo(*size, mode=mode)
    hole = np.zeros((size[1], size[0]), dtype=bool)
    hole[size[1] // 3 : size[1] // 2, size[0] // 4 : size[0] // 2] = True
    [result] = fill_images(checkpoint, [(image, hole)], FillRequest(FAST, blend=True))
    for output in (result.raw, result.image, *result.candidates):
        assert output.size == image.size and output.mode == image.mode
        before, after = np.asarray(image), np.asarray(output)
        assert np.array_equal(before[~hole], after[~hole])
    assert not np.array_equal(np.asarray(image)[hole], np.asarray(result.raw)[hole])
    assert len(result.candidates) == 2 and result.candidate_losses[0] <= result.candidate_losses[1]


def test_holes_at_the_border_and_the_context_crop(checkpoint):
    image = photo(300, 120)
    hole = np.zeros((120, 300), dtype=bool)
    hole[:, 280:] = True  # the right edge
    [result] = fill_images(checkpoint, [(image, hole)], FillRequest(FAST, crop="context"))
    assert result.framing == "context" and result.view.side() >= 20
    assert np.array_equal(np.asarray(image)[~hole], np.asarray(result.image)[~hole])


def test_a_very_large_photo_is_inpainted_at_full_size(checkpoint):
    image = photo(4000, 3000)  # 12 megapixels: only the square around the hole is resized for the model
    hole = np.zeros((3000, 4000), dtype=bool)
    hole[1400:1600, 2100:2400] = True
    [result] = fill_images(checkpoint, [(image, hole)], FillRequest(FAST))
    # Not a face model: the square is the photo's short side (its training framing), over the hole.
    assert result.image.size == (4000, 3000) and result.framing == "scene"
    left, top, right, bottom = result.view.photo_bounds()
    assert result.view.side() == pytest.approx(3000) and left <= 2100 and right >= 2400 and top <= 1400
    before, after = np.asarray(image), np.asarray(result.image)
    assert np.array_equal(before[~hole], after[~hole]) and not np.array_equal(before[hole], after[hole])


def test_the_scene_square_is_the_short_side_over_the_hole_or_larger_for_a_larger_hole():
    from inpaint.locate import scene_framing

    hole = np.zeros((300, 800), bool)
    hole[100:150, 700:760] = True  # near the right edge
    view = scene_framing(hole, 64)
    # Slid to stay inside the photo: it starts at pixel (500, 0), whose outer corner is at (499.5, -0.5).
    assert view.side() == pytest.approx(300) and view.corners()[0] == pytest.approx([499.5, -0.5])
    wide = np.zeros((300, 800), bool)
    wide[100:150, 100:500] = True  # 400 px wide: more than the short side
    assert scene_framing(wide, 64).side() == pytest.approx(500)  # the hole with a quarter's margin


def test_empty_mask_returns_the_image_unchanged_with_a_notice(checkpoint):
    image = photo(40, 30)
    [result] = fill_images(checkpoint, [(image, np.zeros((30, 40), dtype=bool))], FillRequest(FAST))
    assert np.array_equal(np.asarray(result.image), np.asarray(image)) and "unchanged" in result.notes[0]


def test_fill_command(tmp_path, tiny_checkpoint_path, capsys):
    source = tmp_path / "in.png"
    photo(64, 48).save(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    mask = np.zeros((24, 32), dtype=np.uint8)
    mask[5:15, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")  # half size, same aspect ratio
    out = tmp_path / "out" / "filled.png"
    assert (
        main(
            [
                "fill",
                str(source),
                "--mask",
                str(tmp_path / "mask.png"),
                "--out",
                str(out),
                "--checkpoint",
                str(tiny_checkpoint_path),
                "--candidates",
                str(tmp_path / "cands"),
                *FAST_ARGS,
            ]
        )
        == 0
    )
    assert Image.open(out).size == (64, 48)
    assert len(list((tmp_path / "cands").glob("*.png"))) >= 2
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    assert (
        main(
            [
                "fill",
                str(source),
                "--mask-kind",
                "half",
                "--side",
                "top",
                "--out",
                str(tmp_path / "h.jpg"),
                "--checkpoint",
                str(tiny_checkpoint_path),
                "--no-blend",
                *FAST_ARGS,
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "h.jpg").size == (64, 48)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mask-kind", "centre", "--out", "{source}"], "would overwrite the input"),
        (["--mask", "{square}", "--out", "{tmp}/o.png"], "another aspect ratio"),
        (["--out", "{tmp}/o.png"], "exactly one of --mask"),
        (["--mask-kind", "centre", "--out", "{tmp}/o.txt"], "image extension"),
    ],
)
def test_fill_command_errors_are_one_line(tmp_path, tiny_checkpoint_path, capsys, extra, message):
    source = tmp_path / "in.png"
    photo(64, 48).save(source)
    Image.new("L", (20, 20), 255).save(tmp_path / "square.png")
    extra = [e.format(source=source, square=tmp_path / "square.png", tmp=tmp_path) for e in extra]
    assert main(["fill", str(source), "--checkpoint", str(tiny_checkpoint_path), *FAST_ARGS, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def make_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    for path, size in [
        (root / "one.png", (40, 30)),
        (root / "a" / "two.jpg", (32, 32)),
        (root / "a" / "b" / "three.png", (60, 40)),
    ]:
        photo(*size, seed=len(str(path))).save(path)
        mask = np.zeros((size[1], size[0]), dtype=np.uint8)
        mask[: size[1] // 2, : size[0] // 2] = 255
        Image.fromarray(mask).save(path.parent / f"{path.stem}_mask.png")
    (root / "a" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    Image.new("L", (10, 10), 255).save(root / "a" / "corrupt_mask.png")
    photo(50, 50, seed=9).save(root / "a" / "wrong.png")
    Image.new("L", (20, 40), 255).save(root / "a" / "wrong_mask.png")  # another aspect ratio
    photo(20, 20, seed=8).save(root / "nomask.png")


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_batch_mirrors_the_tree_reports_bad_files_and_never_touches_inputs(tmp_path, tiny_checkpoint_path, capsys):
    make_tree(tmp_path / "in")
    before = tree_digest(tmp_path / "in")
    code = main(
        [
            "batch",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            "--checkpoint",
            str(tiny_checkpoint_path),
            "--batch-size",
            "2",
            *FAST_ARGS,
        ]
    )
    assert code == 1  # some images failed
    assert tree_digest(tmp_path / "in") == before
    for name, size in [("one.png", (40, 30)), ("a/two.jpg", (32, 32)), ("a/b/three.png", (60, 40))]:
        assert Image.open(tmp_path / "out" / name).size == size
    report = {
        Path(r["input"]).name: r for r in map(json.loads, (tmp_path / "out" / "report.jsonl").read_text().splitlines())
    }
    assert {n: r["status"] for n, r in report.items()} == {
        "one.png": "ok",
        "two.jpg": "ok",
        "three.png": "ok",
        "corrupt.png": "failed",
        "wrong.png": "failed",
        "nomask.png": "skipped",
    }
    assert "another aspect ratio" in report["wrong.png"]["error"] and "corrupt.png" in report["corrupt.png"]["error"]
    assert "no mask" in report["nomask.png"]["note"]
    assert all(r["seconds"] > 0 and r["context_loss"] >= 0 for r in report.values() if r["status"] == "ok")
    assert not (tmp_path / "out" / "a" / "corrupt.png").exists()
    assert "3 ok" in capsys.readouterr().out


def test_interrupted_batch_resumes_without_redoing_finished_images(tmp_path, checkpoint):
    make_tree(tmp_path / "in")
    masks = MaskSource()
    jobs = [j for j in plan_jobs(tmp_path / "in", tmp_path / "out", masks) if j.source.stem in ("one", "two", "three")]
    records = run_batch(checkpoint, jobs, tmp_path / "out", masks, FillRequest(FAST), batch_size=1)
    first = next(records)  # the run is interrupted after the first image
    records.close()
    done = Path(first["output"])
    stamp = (done.stat().st_mtime_ns, done.read_bytes())
    rerun = list(run_batch(checkpoint, jobs, tmp_path / "out", masks, FillRequest(FAST), batch_size=1))
    statuses = {Path(r["input"]).name: r["status"] for r in rerun}
    assert statuses[Path(first["input"]).name] == "done"
    assert sorted(statuses.values()) == ["done", "ok", "ok"]
    assert (done.stat().st_mtime_ns, done.read_bytes()) == stamp
    assert not list((tmp_path / "out").rglob(".*.tmp*"))  # no half-written files left behind


def test_batch_with_a_mask_kind_and_output_inside_input_is_refused(tmp_path, tiny_checkpoint_path, capsys):
    make_tree(tmp_path / "in")
    assert (
        main(
            [
                "batch",
                str(tmp_path / "in"),
                str(tmp_path / "in" / "out"),
                "--mask-kind",
                "centre",
                "--checkpoint",
                str(tiny_checkpoint_path),
            ]
        )
        == 2
    )
    assert "outside the input folder" in capsys.readouterr().err
    (tmp_path / "in" / "a" / "corrupt.png").unlink()
    assert (
        main(
            [
                "batch",
                str(tmp_path / "in"),
                str(tmp_path / "out"),
                "--mask-kind",
                "centre",
                "--checkpoint",
                str(tiny_checkpoint_path),
                *FAST_ARGS,
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "out").rglob("*.png"))) + len(list((tmp_path / "out").rglob("*.jpg"))) == 5


def test_outputs_get_the_usual_file_mode(tmp_path, tiny_checkpoint_path):
    import os
    import stat

    photo(32, 32).save(tmp_path / "face.png")
    old = os.umask(0o022)
    try:
        assert (
            main(
                [
                    "fill",
                    str(tmp_path / "face.png"),
                    "--mask-kind",
                    "centre",
                    "--out",
                    str(tmp_path / "out.png"),
                    "--checkpoint",
                    str(tiny_checkpoint_path),
                    *FAST_ARGS,
                ]
            )
            == 0
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o644  # not the temporary file's 0600


def test_batch_never_follows_a_link_out_of_the_input_tree(tmp_path, tiny_checkpoint_path, capsys):
    make_tree(tmp_path / "work" / "in")
    (tmp_path / "work" / "in" / "a" / "corrupt.png").unlink()
    (tmp_path / "work" / "in" / "up").symlink_to(tmp_path / "work")  # leads above the output folder
    args = [
        "batch",
        str(tmp_path / "work" / "in"),
        str(tmp_path / "work" / "out"),
        "--mask-kind",
        "centre",
        "--checkpoint",
        str(tiny_checkpoint_path),
        *FAST_ARGS,
    ]
    for _ in range(2):  # a rerun must not read its own outputs through the link
        assert main(args) == 0
    outputs = sorted(
        p.relative_to(tmp_path / "work" / "out") for p in (tmp_path / "work" / "out").rglob("*") if p.is_file()
    )
    assert not any(part == "up" for p in outputs for part in p.parts)
    report = [json.loads(line) for line in (tmp_path / "work" / "out" / "report.jsonl").read_text().splitlines()]
    linked = [r for r in report if "/up/" in r["input"]]
    assert linked and all(r["status"] == "skipped" and "outside the input folder" in r["note"] for r in linked)
    assert len({r["input"] for r in report}) == len(report)  # one record per input, reruns included


def test_host_work_on_several_threads_gives_the_same_fills(checkpoint):
    """A GPU search hands framing and finishing to threads; they must not change a pixel."""
    holes = [np.zeros((30, 40), bool), np.zeros((32, 32), bool), np.zeros((40, 60), bool)]
    holes[0][5:15, 10:25] = True
    holes[2][20:35, 5:30] = True  # holes[1] stays empty: that photo comes back unchanged
    items = [(photo(w, h, seed=i), hole) for i, ((h, w), hole) in enumerate((h.shape, h) for h in holes)]
    alone = fill_images(checkpoint, items, FillRequest(FAST), workers=1)
    threaded = fill_images(checkpoint, items, FillRequest(FAST), workers=3)
    assert [r.framing for r in alone] == [r.framing for r in threaded] and alone[1].framing == "none"
    for a, b in zip(alone, threaded):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        assert a.context_loss == b.context_loss


def test_batch_finishing_one_batch_while_the_next_searches_keeps_order_and_failures(tmp_path, checkpoint, monkeypatch):
    from inpaint.engine import SearchedFills

    make_tree(tmp_path / "in")
    masks = MaskSource()
    finish = SearchedFills.finish

    def finish_or_break(self, workers=1):
        if any(item.original.size == (32, 32) for item in self.prepared.values()):
            raise RuntimeError("blend broke")
        return finish(self, workers)

    monkeypatch.setattr(SearchedFills, "finish", finish_or_break)
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        jobs = [j for j in plan_jobs(tmp_path / "in", out, masks) if j.source.stem in ("one", "two", "three")]
        records = list(run_batch(checkpoint, jobs, out, masks, FillRequest(FAST), batch_size=1, workers=workers))
        runs[workers] = ([(Path(r["input"]).name, r["status"]) for r in records], tree_digest(out), records)
    assert runs[1][0] == runs[2][0]  # the same records in the same (the jobs') order
    assert [name for name, _ in runs[2][0]] == [job.source.name for job in jobs]
    assert dict(runs[2][0]) == {"one.png": "ok", "two.jpg": "failed", "three.png": "ok"}
    assert all("blend broke" in r["error"] for r in runs[2][2] if r["status"] == "failed")
    outputs = {name: digest for name, digest in runs[2][1].items() if name != "report.jsonl"}
    assert outputs == {name: digest for name, digest in runs[1][1].items() if name != "report.jsonl"}
    assert set(outputs) == {"one.png", "a/b/three.png"}
