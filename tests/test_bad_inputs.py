"""Every command against bad input: one table of command lines, each refused in one line.

Each case runs `inpaint.cli.main(argv)` in-process in a fresh workspace (a copy of prepared files:
a photo and its mask, the tiny checkpoint and forged ones, text files posing as images, latents,
a folder of images, a training run…), with the workspace as the current folder. A refusal must:

  - exit with 1 or 2 (argparse's own errors raise SystemExit(2));
  - print no traceback;
  - end with one error line (`error: …`, or argparse's `inpaint …: error: …`) that names the bad
    value, the flag or the file;
  - leave the workspace exactly as it was: the same files and folders, byte for byte (no input
    modified, no partial output, no hidden temporary file, no empty output folder).

A few rows are good inputs that must still work (exit 0); they are checked by their own function.
A row the library mis-handles is kept, marked xfail(strict=True) with what it does instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaint.cli import main

TWO_TO_THE_70 = str(2**70)  # 1180591620717411303424: beyond any seed a generator takes
SEED_MAX = str(2**63 - 1)
FAST = "--iterations 2 --restarts 1"
CKPT = "--checkpoint {ckpt}"
ERROR_LINE = re.compile(r"^(error: |inpaint( [\w-]+)*: error: )")


# --- the prepared files --------------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1×1 PNG whose IHDR says width × height (CRC fixed): what a decompression bomb looks like."""
    import io

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _forge(
    source: Path,
    target: Path,
    metadata: Callable[[dict], None] | None = None,
    tensors: Callable[[dict], None] | None = None,
) -> None:
    """Copy a checkpoint with its metadata JSON and/or its tensors changed, keeping the header keys
    (format, format_version, metadata) as save_checkpoint writes them."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(source), framework="pt") as handle:
        header = dict(handle.metadata())
    state = load_file(str(source))
    meta = json.loads(header["metadata"])
    if metadata:
        metadata(meta)
    if tensors:
        tensors(state)
    header["metadata"] = json.dumps(meta, sort_keys=True)
    save_file(state, str(target), metadata=header)


def _set(path: str, value) -> Callable[[dict], None]:
    def edit(meta: dict) -> None:
        *parents, last = path.split(".")
        node = meta
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


def _nan_weight(state: dict) -> None:
    state["generator.main.0.weight"][0, 0, 0, 0] = float("nan")


def _int8_weights(state: dict) -> None:
    import torch

    for key, tensor in list(state.items()):
        if key.startswith("generator.") and tensor.is_floating_point():
            state[key] = tensor.round().to(torch.int8)


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _square_hole(size: int = 40) -> np.ndarray:
    hole = np.zeros((size, size), dtype=bool)
    hole[12:28, 12:28] = True
    return hole


@pytest.fixture(scope="session")
def prepared(tiny_checkpoint_path, tmp_path_factory) -> Path:
    """The files every case's workspace is copied from (built once)."""
    import torch

    from inpaint.checkpoint import load_checkpoint, save_checkpoint
    from inpaint_training.dry_run import write_synthetic_images
    from inpaint_training.loop import train
    from inpaint_training.options import OPTIONS_FILE, TrainOptions

    root = tmp_path_factory.mktemp("prepared")
    _photo(40, 40).save(root / "face.png")
    Image.fromarray(_square_hole().astype(np.uint8) * 255).save(root / "mask.png")
    # What an image editor exports: the painted hole opaque (and black: dark, as brightness goes),
    # the rest transparent (and white underneath: bright, as brightness goes).
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[~_square_hole()] = (255, 255, 255, 0)
    rgba[_square_hole()] = (0, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(root / "rgba_mask.png")
    shutil.copy(tiny_checkpoint_path, root / "ckpt.safetensors")

    (root / "afile.txt").write_text("an ordinary text file\n")
    (root / "textlatents.npy").write_text("text named like latents\n")
    (root / "adir").mkdir()
    np.save(root / "adir" / "latents.npy", np.zeros((1, 12), dtype=np.float32))
    _photo(1, 5000).save(root / "thin.png")
    (root / "text.png").write_text("this is text, not a picture\n")
    (root / "empty.png").write_bytes(b"")
    (root / "huge.png").write_bytes(_png_claiming(30000, 30000))
    Image.new("1", (12000, 11000)).save(root / "bilevel.png")  # 132 megapixels in a 16 kB file
    np.save(root / "npy_str.npy", np.array(["a", "b", "c"]))
    np.save(root / "npy_empty.npy", np.zeros((0, 12), dtype=np.float32))
    np.save(root / "npy_nan.npy", np.full((1, 12), np.nan, dtype=np.float32))
    np.save(root / "npy_short.npy", np.zeros((1, 5), dtype=np.float32))

    # Checkpoints: G only, truncated, and forged headers or weights.
    loaded = load_checkpoint(tiny_checkpoint_path)
    save_checkpoint(root / "nodisc.safetensors", loaded.generator, None, loaded.prior, {"steps": 0})
    whole = (root / "ckpt.safetensors").read_bytes()
    (root / "f_trunc.safetensors").write_bytes(whole[: len(whole) // 2])
    source = root / "ckpt.safetensors"
    _forge(source, root / "f_latent.safetensors", _set("model.latent_dim", 1e9))
    _forge(source, root / "f_width.safetensors", _set("model.g_width", 100000))
    _forge(source, root / "f_prior.safetensors", _set("latent_prior", ["uniform"]))
    _forge(source, root / "f_mean.safetensors", _set("pixels.mean", "half"))
    _forge(source, root / "f_std.safetensors", _set("pixels.std", 0))
    _forge(source, root / "f_nan.safetensors", tensors=_nan_weight)
    _forge(source, root / "f_int8.safetensors", tensors=_int8_weights)

    # A batch input tree (two images with masks) and a folder of training images.
    (root / "tree" / "sub").mkdir(parents=True)
    for path, size in ((root / "tree" / "one.png", (40, 30)), (root / "tree" / "sub" / "two.png", (32, 32))):
        _photo(*size, seed=size[0]).save(path)
        mask = np.zeros((size[1], size[0]), dtype=np.uint8)
        mask[: size[1] // 2, : size[0] // 2] = 255
        Image.fromarray(mask).save(path.parent / f"{path.stem}_mask.png")
    write_synthetic_images(root / "data", count=6, size=40)

    # A real (one-step) training run, and two copies whose options file is damaged.
    torch.manual_seed(0)
    options = TrainOptions(
        data=str(root / "data"),
        out=str(root / "run"),
        image_size=32,
        g_width=8,
        d_width=8,
        latent_dim=12,
        batch_size=4,
        steps=1,
        log_every=1,
        sample_every=1,
        checkpoint_every=1,
        workers=0,
    )
    train(options, show_progress=False, log=lambda *a, **k: None)
    for name, edit in (("run_list", lambda o: [o]), ("run_abc", lambda o: {**o, "batch_size": "abc"})):
        shutil.copytree(root / "run", root / name)
        saved = json.loads((root / name / OPTIONS_FILE).read_text())
        (root / name / OPTIONS_FILE).write_text(json.dumps(edit(saved), indent=2))
    return root


@pytest.fixture
def workspace(prepared, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the prepared files, and the current folder (so a stray relative write shows)."""
    ws = Path(shutil.copytree(prepared, tmp_path / "ws"))
    monkeypatch.chdir(ws)
    return ws


def snapshot(root: Path) -> dict[str, str]:
    """Every file (hidden ones included) with its SHA-256, and every folder, under root."""
    entries = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        entries[name] = "<folder>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


def describe_changes(before: dict[str, str], after: dict[str, str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"


def placeholders(ws: Path) -> dict[str, str]:
    names = {
        "ws": ws,
        "face": ws / "face.png",
        "mask": ws / "mask.png",
        "rgba_mask": ws / "rgba_mask.png",
        "ckpt": ws / "ckpt.safetensors",
        "out": ws / "out.png",
        "afile": ws / "afile.txt",
        "adir": ws / "adir",
        "tree": ws / "tree",
        "data": ws / "data",
        "run": ws / "run",
        "missing": ws / "missing",
    }
    names.update({p.stem: p for p in ws.iterdir() if p.suffix in (".png", ".safetensors", ".npy")})
    names.update({p.name: p for p in ws.iterdir() if p.name.startswith("run_")})
    return {k: str(v) for k, v in names.items()}


# --- the table -----------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    argv: str  # split on spaces, then each word formatted with the workspace's paths
    fragments: tuple[str, ...] = ()  # each must be in the error line (formatted too)
    check: Callable[[Path, dict[str, str]], None] | None = None  # a good input: exit 0, then this


def _param(case: Case, xfail: str | None):
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []  # a known defect, kept in the table
    return pytest.param(case, id=case.name, marks=marks)


def bad(name: str, argv: str, *fragments: str, xfail: str | None = None):
    return _param(Case(name, argv, fragments), xfail)


def good(name: str, argv: str, check: Callable[[Path, dict[str, str]], None], xfail: str | None = None):
    return _param(Case(name, argv, check=check), xfail)


def _fill_only_the_opaque_area(ws: Path, before: dict[str, str]) -> None:
    source, result = np.asarray(Image.open(ws / "face.png")), np.asarray(Image.open(ws / "filled.png"))
    assert result.shape == source.shape
    hole = _square_hole()
    assert np.array_equal(result[~hole], source[~hole]), "pixels outside the opaque (painted) area changed"
    assert not np.array_equal(result[hole], source[hole]), "the opaque (painted) area was not filled"


def _image_of_size(name: str, size: tuple[int, int]) -> Callable[[Path, dict[str, str]], None]:
    def check(ws: Path, before: dict[str, str]) -> None:
        with Image.open(ws / name) as image:
            image.load()
            assert image.size == size

    return check


def _files_exist(*names: str) -> Callable[[Path, dict[str, str]], None]:
    def check(ws: Path, before: dict[str, str]) -> None:
        for name in names:
            assert (ws / name).is_file(), f"{name} not written"

    return check


def _batch_done(ws: Path, before: dict[str, str]) -> None:
    _image_of_size("bout/one.png", (40, 30))(ws, before)
    _image_of_size("bout/sub/two.png", (32, 32))(ws, before)
    records = [json.loads(line) for line in (ws / "bout" / "report.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in records) == ["ok", "ok"]


FILL = f"fill {{face}} {CKPT} {FAST}"
FILL_MASK = f"{FILL} --mask {{mask}} --out {{out}}"
CENTRE = f"{FILL} --mask-kind centre --out {{out}}"
BATCH = f"batch {{tree}} {{ws}}/bout {CKPT} {FAST} --batch-size 1"
SAMPLE = f"sample {CKPT} --n 2"
WALK = f"edit interpolate seed:1 seed:2 {CKPT} --out {{ws}}/eout"
SUMS = f"edit arithmetic seed:1 seed:2 seed:3 {CKPT} --out {{ws}}/aout"
TRAIN = "train --data {data} --out {ws}/newrun --steps 1"
ENCODER = f"train-encoder {CKPT} --data {{data}} --out {{ws}}/enc"
FRAMER = f"train-framer {CKPT} --data {{data}} --out {{ws}}/framer"

CASES = [
    # fill: outputs that are inputs, folders or files in the way, non-images
    bad("fill-out-is-the-mask", f"{FILL} --mask {{mask}} --out {{mask}}", "{mask}", "would overwrite"),
    bad("fill-out-is-the-image", f"{FILL} --mask-kind centre --out {{face}}", "{face}", "would overwrite"),
    bad("fill-out-is-the-checkpoint", f"{FILL} --mask-kind centre --out {{ckpt}}", "{ckpt}", "would overwrite"),
    bad("fill-out-is-a-folder", f"{FILL} --mask-kind centre --out {{adir}}", "{adir}", "folder"),
    bad("fill-out-under-a-file", f"{FILL} --mask-kind centre --out {{afile}}/x.png", "{afile}", "is a file"),
    bad("fill-out-not-an-image-name", f"{FILL} --mask-kind centre --out {{ws}}/x.txt", "x.txt", "image extension"),
    bad("fill-candidates-is-a-file", f"{FILL_MASK} --candidates {{afile}}", "--candidates", "{afile}"),
    bad("fill-mask-and-mask-kind", f"{FILL_MASK} --mask-kind centre", "exactly one of --mask"),
    bad("fill-no-mask", f"{FILL} --out {{out}}", "exactly one of --mask"),
    # fill: numbers
    bad("fill-lr-nan", f"{FILL_MASK} --lr nan", "--lr", "nan"),
    bad("fill-lr-negative", f"{FILL_MASK} --lr -1", "--lr", "-1"),
    bad("fill-lr-zero", f"{FILL_MASK} --lr 0", "--lr", "0"),
    bad("fill-lam-nan", f"{FILL_MASK} --lam nan", "--lam", "nan"),
    bad("fill-lam-inf", f"{FILL_MASK} --lam inf", "--lam", "inf"),
    bad("fill-lam-negative", f"{FILL_MASK} --lam -0.5", "--lam", "-0.5"),
    *[
        bad(
            f"fill-{kind}-fraction-{value}",
            f"{FILL} --mask-kind {kind} --out {{out}} --fraction {value}",
            "--fraction",
            value,
        )
        for kind in ("centre", "pattern", "random")
        for value in ("2", "-1", "nan")
    ],
    bad("fill-fraction-zero", f"{CENTRE} --fraction 0", "--fraction", "0"),
    bad("fill-fraction-one", f"{CENTRE} --fraction 1", "--fraction", "1"),
    bad("fill-seed-negative", f"{FILL} --mask-kind random --out {{out}} --seed -1", "--seed", "-1"),
    bad("fill-seed-2**70", f"{FILL} --mask-kind random --out {{out}} --seed {TWO_TO_THE_70}", "--seed", TWO_TO_THE_70),
    bad("fill-seed-fraction", f"{FILL} --mask-kind random --out {{out}} --seed 1.5", "--seed", "1.5"),
    bad("fill-neighbourhood-20001", f"{FILL_MASK} --neighbourhood 20001", "--neighbourhood", "20001"),
    bad("fill-neighbourhood-even", f"{FILL_MASK} --neighbourhood 4", "--neighbourhood", "4"),
    bad("fill-neighbourhood-nan", f"{FILL_MASK} --neighbourhood nan", "--neighbourhood", "nan"),
    bad("fill-iterations-nan", f"{FILL_MASK} --iterations nan", "--iterations", "nan"),
    bad("fill-iterations-fraction", f"{FILL_MASK} --iterations 2.5", "--iterations", "2.5"),
    bad("fill-restarts-0", f"{FILL_MASK} --restarts 0", "--restarts", "0"),
    bad("fill-restarts-huge", f"{FILL_MASK} --restarts 100000000", "--restarts", "100000000"),
    bad("fill-jitter-nan", f"{FILL_MASK} --jitter nan", "--jitter", "nan"),
    bad("fill-patience-negative", f"{FILL_MASK} --patience -1", "--patience", "-1"),
    bad("fill-face-box-three-numbers", f"{FILL_MASK} --face-box 1,2,3", "--face-box", "1,2,3"),
    bad("fill-face-box-nan", f"{FILL_MASK} --face-box nan,0,10,10", "--face-box", "nan,0,10,10"),
    bad("fill-face-box-zero-width", f"{FILL_MASK} --face-box 0,0,0,10", "--face-box", "0,0,0,10"),
    # fill: bad images and masks
    bad("fill-image-1x5000", f"fill {{thin}} {CKPT} {FAST} --mask-kind centre --out {{out}}", "{thin}", "too small"),
    bad(
        "fill-image-is-text", f"fill {{text}} {CKPT} {FAST} --mask-kind centre --out {{out}}", "{text}", "not an image"
    ),
    bad(
        "fill-image-is-empty",
        f"fill {{empty}} {CKPT} {FAST} --mask-kind centre --out {{out}}",
        "{empty}",
        "not an image",
    ),
    bad(
        "fill-image-missing",
        f"fill {{ws}}/nothing.png {CKPT} {FAST} --mask-kind centre --out {{out}}",
        "nothing.png",
        "no such file",
    ),
    bad(
        "fill-image-header-30000x30000",
        f"fill {{huge}} {CKPT} {FAST} --mask-kind centre --out {{out}}",
        "{huge}",
        "too large",
    ),
    bad(
        "fill-image-bilevel-12000x11000",
        f"fill {{bilevel}} {CKPT} {FAST} --mask-kind centre --out {{out}}",
        "{bilevel}",
        "too large",
    ),
    bad("fill-mask-is-text", f"{FILL} --mask {{afile}} --out {{out}}", "{afile}", "not an image"),
    bad("fill-mask-missing", f"{FILL} --mask {{ws}}/nomask.png --out {{out}}", "nomask.png", "no such file"),
    bad("fill-mask-header-30000x30000", f"{FILL} --mask {{huge}} --out {{out}}", "{huge}", "too large"),
    # fill: checkpoints
    bad(
        "fill-checkpoint-missing",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{ws}}/none.safetensors",
        "none.safetensors",
        "no such checkpoint",
    ),
    bad(
        "fill-checkpoint-is-text",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{afile}}",
        "{afile}",
        "not a readable checkpoint",
    ),
    bad(
        "fill-checkpoint-truncated",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{f_trunc}}",
        "{f_trunc}",
        "truncated",
    ),
    bad(
        "fill-checkpoint-without-discriminator",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{nodisc}}",
        "{nodisc}",
        "discriminator",
    ),
    bad(
        "fill-checkpoint-latent-dim-1e9",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{f_latent}}",
        "{f_latent}",
        "latent_dim",
    ),
    bad(
        "fill-checkpoint-g-width-100000",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{f_width}}",
        "{f_width}",
        "g_width",
    ),
    bad(
        "fill-checkpoint-prior-a-list",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{f_prior}}",
        "{f_prior}",
        "latent prior",
    ),
    bad(
        "fill-checkpoint-pixel-mean-text",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{f_mean}}",
        "{f_mean}",
        "pixels.mean",
    ),
    bad(
        "fill-checkpoint-pixel-std-0",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{f_std}}",
        "{f_std}",
        "pixels.std",
    ),
    bad(
        "fill-checkpoint-nan-weight",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{f_nan}}",
        "{f_nan}",
        "NaN",
    ),
    bad(
        "fill-checkpoint-int8-weights",
        f"{FILL} --mask-kind centre --out {{out}} --checkpoint {{f_int8}}",
        "{f_int8}",
        "int8",
    ),
    # batch
    bad("batch-lam-nan", f"{BATCH} --lam nan", "--lam", "nan"),
    bad("batch-fraction-2", f"{BATCH} --mask-kind centre --fraction 2", "--fraction", "2"),
    bad("batch-batch-size-0", f"{BATCH} --batch-size 0", "--batch-size", "0"),
    bad("batch-batch-size-huge", f"{BATCH} --batch-size 5000", "--batch-size", "5000"),
    bad("batch-batch-size-word", f"{BATCH} --batch-size many", "--batch-size", "many"),
    bad("batch-input-missing", f"batch {{missing}} {{ws}}/bout {CKPT} {FAST}", "{missing}", "does not exist"),
    bad("batch-input-is-a-file", f"batch {{afile}} {{ws}}/bout {CKPT} {FAST}", "{afile}"),
    bad("batch-output-inside-input", f"batch {{tree}} {{tree}}/out {CKPT} {FAST}", "outside the input folder"),
    bad("batch-output-is-a-file", f"batch {{tree}} {{afile}} {CKPT} {FAST}", "{afile}"),
    bad("batch-mask-dir-and-kind", f"{BATCH} --mask-dir {{adir}} --mask-kind centre", "at most one of --mask-dir"),
    bad(
        "batch-checkpoint-without-discriminator",
        f"batch {{tree}} {{ws}}/bout --checkpoint {{nodisc}} {FAST}",
        "{nodisc}",
        "discriminator",
    ),
    # sample
    bad("sample-n-1e9", f"{SAMPLE} --n 1000000000 --out {{ws}}/g.png", "--n", "1000000000"),
    bad("sample-n-0", f"sample {CKPT} --n 0 --out {{ws}}/g.png", "--n", "0"),
    bad("sample-n-nan", f"sample {CKPT} --n nan --out {{ws}}/g.png", "--n", "nan"),
    bad("sample-seed-2**70", f"{SAMPLE} --seed {TWO_TO_THE_70} --out {{ws}}/g.png", "--seed", TWO_TO_THE_70),
    bad("sample-out-txt", f"{SAMPLE} --out {{ws}}/g.txt", "g.txt", "image extension"),
    bad("sample-out-no-extension", f"{SAMPLE} --out {{ws}}/g", "{ws}/g", "image extension"),
    bad("sample-out-is-a-folder", f"{SAMPLE} --out {{adir}}", "{adir}", "folder"),
    bad("sample-out-is-the-checkpoint", f"{SAMPLE} --out {{ckpt}}", "{ckpt}", "would overwrite"),
    bad("sample-out-dir-is-a-file", f"{SAMPLE} --out-dir {{afile}}", "--out-dir", "{afile}"),
    bad("sample-checkpoint-nan-weight", "sample --checkpoint {f_nan} --n 2 --out {ws}/g.png", "{f_nan}", "NaN"),
    # edit interpolate
    *[
        bad(f"interpolate-frames-{value}", f"{WALK} --frames {value}", "--frames", value)
        for value in ("0", "1", "-3", "1000000", "nan")
    ],
    bad("interpolate-frame-seconds-negative", f"{WALK} --frame-seconds -1", "--frame-seconds", "-1"),
    bad("interpolate-frame-seconds-nan", f"{WALK} --frame-seconds nan", "--frame-seconds", "nan"),
    bad("interpolate-method-unknown", f"{WALK} --method cubic", "--method", "cubic"),
    bad(
        "interpolate-npy-of-strings",
        f"edit interpolate {{npy_str}} seed:2 {CKPT} --out {{ws}}/eout",
        "{npy_str}",
        "numbers",
    ),
    bad(
        "interpolate-npy-empty",
        f"edit interpolate {{npy_empty}} seed:2 {CKPT} --out {{ws}}/eout",
        "{npy_empty}",
        "0 numbers",
    ),
    bad("interpolate-npy-nan", f"edit interpolate {{npy_nan}} seed:2 {CKPT} --out {{ws}}/eout", "{npy_nan}", "NaN"),
    bad(
        "interpolate-npy-wrong-size",
        f"edit interpolate {{npy_short}} seed:2 {CKPT} --out {{ws}}/eout",
        "{npy_short}",
        "size 12",
    ),
    bad(
        "interpolate-npy-is-text",
        f"edit interpolate seed:1 {{textlatents}} {CKPT} --out {{ws}}/eout",
        "{textlatents}",
        "not a latent file",
    ),
    bad(
        "interpolate-photo-is-text",
        f"edit interpolate seed:1 {{text}} {CKPT} --out {{ws}}/eout",
        "{text}",
        "not an image",
    ),
    bad("interpolate-empty-seeds", f"edit interpolate seed: seed:2 {CKPT} --out {{ws}}/eout", "seed:", "no seeds"),
    bad(
        "interpolate-npy-nan-into-an-existing-folder",
        f"edit interpolate {{npy_nan}} seed:2 {CKPT} --out {{adir}}",
        "{npy_nan}",
        "NaN",
    ),
    bad(
        "interpolate-out-is-a-file",
        f"edit interpolate seed:1 seed:2 {CKPT} --out {{afile}}",
        "{afile}",
        "must be a folder",
    ),
    bad(
        "interpolate-input-at-out-latents",
        f"edit interpolate {{adir}}/latents.npy seed:2 {CKPT} --out {{adir}}",
        "latents.npy",
        "would overwrite",
    ),
    # edit arithmetic and project
    bad("arithmetic-variations-negative", f"{SUMS} --variations -1", "--variations", "-1"),
    bad("arithmetic-variations-1e8", f"{SUMS} --variations 100000000", "--variations", "100000000"),
    bad("arithmetic-noise-nan", f"{SUMS} --noise nan", "--noise", "nan"),
    bad("arithmetic-seed-2**70", f"{SUMS} --seed {TWO_TO_THE_70}", "--seed", TWO_TO_THE_70),
    bad("arithmetic-seed-x", f"edit arithmetic seed:x seed:2 seed:3 {CKPT} --out {{ws}}/aout", "seed:x", "'x'"),
    bad(
        "arithmetic-seed-x-into-an-existing-folder",
        f"edit arithmetic seed:x seed:2 seed:3 {CKPT} --out {{adir}}",
        "seed:x",
        "'x'",
    ),
    bad(
        "arithmetic-seed-negative-in-spec",
        f"edit arithmetic seed:1,-4 seed:2 seed:3 {CKPT} --out {{ws}}/aout",
        "seed:1,-4",
        "-4",
    ),
    bad("project-image-is-text", f"edit project {{text}} {CKPT} --out {{ws}}/pout", "{text}", "not an image"),
    bad("project-image-header-30000x30000", f"edit project {{huge}} {CKPT} --out {{ws}}/pout", "{huge}", "too large"),
    # train
    bad("train-epochs-nan", f"{TRAIN} --epochs nan", "--epochs", "nan"),
    bad("train-lr-nan", f"{TRAIN} --lr nan", "--lr", "nan"),
    bad("train-beta1-2", f"{TRAIN} --beta1 2", "--beta1", "2"),
    bad("train-beta1-nan", f"{TRAIN} --beta1 nan", "--beta1", "nan"),
    bad("train-beta1-1", f"{TRAIN} --beta1 1", "--beta1", "1"),
    bad("train-workers-negative", f"{TRAIN} --workers -1", "--workers", "-1"),
    bad("train-latent-dim-1e9", f"{TRAIN} --latent-dim 1000000000", "--latent-dim", "1000000000"),
    bad("train-g-width-100000", f"{TRAIN} --g-width 100000", "--g-width", "100000"),
    bad("train-minutes-nan", f"{TRAIN} --minutes nan", "--minutes", "nan"),
    bad("train-steps-0", "train --data {data} --out {ws}/newrun --steps 0", "--steps", "0"),
    bad("train-batch-size-0", f"{TRAIN} --batch-size 0", "--batch-size", "0"),
    bad("train-seed-2**70", f"{TRAIN} --seed {TWO_TO_THE_70}", "--seed", TWO_TO_THE_70),
    bad("train-image-size-48", f"{TRAIN} --image-size 48", "--image-size", "48"),
    bad("train-diffaug-unknown", f"{TRAIN} --diffaug colour,warp", "--diffaug", "warp"),
    bad("train-out-is-a-file", "train --data {data} --out {afile} --steps 1", "{afile}", "must be a folder"),
    bad("train-out-holds-a-run", "train --data {data} --out {run} --steps 1", "{run}", "already holds"),
    bad("train-data-missing", "train --data {missing} --out {ws}/newrun --steps 1", "{missing}", "does not exist"),
    bad("train-resume-missing", "train --resume {missing}", "{missing}", "not a training run"),
    bad("train-resume-options-a-list", "train --resume {run_list} --steps 2", "training_options.json", "list"),
    bad("train-resume-batch-size-abc", "train --resume {run_abc} --steps 2", "batch_size", "abc"),
    bad(
        "train-resume-changes-batch-size",
        "train --resume {run} --batch-size 8 --steps 2",
        "--batch-size",
        "cannot change",
    ),
    # train-encoder / train-framer
    bad("train-encoder-lr-nan", f"{ENCODER} --lr nan", "--lr", "nan"),
    bad("train-encoder-steps-0", f"{ENCODER} --steps 0", "--steps", "0"),
    bad("train-encoder-batch-size-1", f"{ENCODER} --batch-size 1", "--batch-size", "1"),
    bad("train-encoder-out-is-a-file", f"train-encoder {CKPT} --data {{data}} --out {{afile}} --steps 1", "{afile}"),
    bad(
        "train-encoder-data-missing",
        f"train-encoder {CKPT} --data {{missing}} --out {{ws}}/enc --steps 1",
        "{missing}",
        "does not exist",
    ),
    bad("train-framer-lr-nan", f"{FRAMER} --lr nan", "--lr", "nan"),
    bad("train-framer-steps-0", f"{FRAMER} --steps 0", "--steps", "0"),
    bad(
        "train-framer-data-missing",
        f"train-framer {CKPT} --data {{missing}} --out {{ws}}/framer --steps 1",
        "{missing}",
        "does not exist",
    ),
    bad("train-framer-out-is-a-file", f"train-framer {CKPT} --data {{data}} --out {{afile}} --steps 1", "{afile}"),
    # eval
    bad("eval-data-missing", f"eval {CKPT} --data {{missing}} --n 2", "{missing}", "does not exist"),
    bad("eval-data-is-a-file", f"eval {CKPT} --data {{afile}} --n 2", "{afile}"),
    bad("eval-n-1", f"eval {CKPT} --data {{data}} --n 1", "--n", "1"),
    bad("eval-seed-2**70", f"eval {CKPT} --data {{data}} --seed {TWO_TO_THE_70}", "--seed", TWO_TO_THE_70),
    # export
    bad("export-out-is-a-file", "export {run} --out {afile}", "{afile}", "must be a folder"),
    bad("export-out-is-the-run", "export {run} --out {run}", "{run}", "would overwrite"),
    bad("export-run-missing", "export {missing} --out {ws}/shipped", "{missing}"),
    bad("export-data-missing", "export {run} --out {ws}/shipped --data {missing}", "{missing}"),
    # app (nothing is launched: the flags are refused first)
    bad("app-port-0", "app --port 0", "--port", "0"),
    bad("app-port-70000", "app --port 70000", "--port", "70000"),
    # good inputs that must still work
    good(
        "fill-rgba-mask-fills-only-the-opaque-area",
        f"{FILL} --mask {{rgba_mask}} --out {{ws}}/filled.png",
        _fill_only_the_opaque_area,
    ),
    good(
        "fill-random-mask-largest-seed-into-a-new-folder",
        f"{FILL} --mask-kind random --fraction 0.5 --seed {SEED_MAX} --out {{ws}}/new/r.jpg",
        _image_of_size("new/r.jpg", (40, 40)),
    ),
    good(
        "fill-pattern-mask-fraction-0.99",
        f"{FILL} --mask-kind pattern --fraction 0.99 --out {{ws}}/p.png",
        _image_of_size("p.png", (40, 40)),
    ),
    good("sample-seed-2**53+1", f"{SAMPLE} --seed 9007199254740993 --out {{ws}}/g.png", _files_exist("g.png")),
    good(
        "sample-two",
        f"{SAMPLE} --out {{ws}}/g.png --out-dir {{ws}}/each",
        _files_exist("g.png", "each/seed0-0000.png", "each/seed0-0001.png"),
    ),
    good(
        "interpolate-two-frames-from-a-npy",
        f"edit interpolate seed:1 {{adir}}/latents.npy {CKPT} --frames 2 --out {{ws}}/eout",
        _files_exist("eout/strip.png", "eout/interpolation.gif", "eout/latents.npy"),
    ),
    good(
        "arithmetic-no-variations",
        f"{SUMS} --variations 0",
        _files_exist("aout/equation.png", "aout/result.png", "aout/latents.npy"),
    ),
    good("batch-two-images", BATCH, _batch_done),
]


@pytest.mark.parametrize("case", CASES)
def test_command_line(case: Case, workspace: Path, capfd):
    paths = placeholders(workspace)
    argv = [word.format(**paths) for word in case.argv.split()]
    before = snapshot(workspace)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's refusals
        code = exit_.code
    except BaseException as error:  # noqa: BLE001 (what a user would see as a traceback)
        captured = capfd.readouterr()
        pytest.fail(
            f"Traceback: uncaught {type(error).__name__}: {error}\n{captured.out}{captured.err}"
            f"{''.join(traceback.format_exception(error))}"
        )
    captured = capfd.readouterr()
    output = captured.out + captured.err
    after = snapshot(workspace)
    assert "Traceback" not in output, output
    temporaries = [name for name in after if Path(name).name.startswith(".") and ".tmp" in name]
    assert not temporaries, f"temporary files left behind: {temporaries}"

    if case.check is not None:
        assert code == 0, output
        changed = [k for k in before if after.get(k) != before[k]]
        assert not changed, f"inputs changed or removed: {changed}"
        case.check(workspace, before)
        return

    assert code in (1, 2), f"exit code {code!r}; output:\n{output}"
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines, f"nothing on stderr; stdout:\n{captured.out}"
    last = lines[-1].split("\r")[-1]  # tqdm redraws with carriage returns
    assert ERROR_LINE.match(last), f"the last stderr line is not one error line: {last!r}\n{output}"
    for fragment in case.fragments:
        fragment = fragment.format(**paths)
        assert fragment in last, f"{fragment!r} not in the error line {last!r}"
    assert after == before, f"the workspace changed: {describe_changes(before, after)}; output:\n{output}"
