"""Batch inpainting of a folder tree: pairing images with masks, resuming, and the report.

Output tree mirrors the input tree. A finished output is never redone: a rerun skips every image
whose output exists (outputs are written atomically, so an existing one is complete), which makes
an interrupted batch resume where it stopped. Inputs are only read. Each image gets one line in
OUT_DIR/report.jsonl (status ok | unchanged | skipped | failed, losses, seconds, error).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from inpaint.checkpoint import Checkpoint
from inpaint.engine import fill_images
from inpaint.errors import UserError
from inpaint.images import find_images, open_image, save_image
from inpaint.masks import load_mask, make_mask
from inpaint.search import SearchSettings

REPORT_FILE = "report.jsonl"
MASK_SUFFIX = "_mask"


@dataclass
class Job:
    source: Path
    output: Path
    mask: Path | None  # None: the mask comes from a mask kind


@dataclass
class MaskSource:
    kind: str | None = None  # a mask kind for every image
    folder: Path | None = None  # a mask folder mirroring the input tree
    fraction: float | None = None
    side: str = "left"
    seed: int = 0


def plan_jobs(in_dir: Path, out_dir: Path, masks: MaskSource) -> list[Job]:
    """Every image under in_dir (masks beside images, NAME_mask.*, are not inputs)."""
    if not in_dir.is_dir():
        raise UserError(f"{in_dir}: input folder does not exist")
    if out_dir.resolve() == in_dir.resolve() or in_dir.resolve() in out_dir.resolve().parents:
        raise UserError(f"{out_dir}: the output folder must be outside the input folder (inputs are never overwritten)")
    files, _ = find_images(in_dir)
    images = [f for f in files if not f.stem.endswith(MASK_SUFFIX)]
    by_stem = {(f.parent, f.stem): f for f in files if f.stem.endswith(MASK_SUFFIX)}
    jobs = []
    for source in images:
        relative = source.relative_to(in_dir)
        mask = None
        if masks.kind is None:
            if masks.folder is not None:
                candidates = [masks.folder / relative.parent / f"{source.stem}{MASK_SUFFIX}.png", masks.folder / relative.parent / f"{source.stem}.png"]
                mask = next((c for c in candidates if c.is_file()), candidates[0])
            else:
                mask = by_stem.get((source.parent, source.stem + MASK_SUFFIX), source.parent / f"{source.stem}{MASK_SUFFIX}.png")
        jobs.append(Job(source, out_dir / relative, mask))
    if not jobs:
        raise UserError(f"{in_dir}: contains no images to inpaint")
    return jobs


def _load(job: Job, masks: MaskSource) -> tuple[Image.Image, np.ndarray]:
    image = open_image(job.source)
    width, height = image.size
    if job.mask is None:
        hole = make_mask(masks.kind, height, width, masks.fraction, masks.seed, masks.side)
    elif not job.mask.is_file():
        raise UserError(f"{job.source}: no mask (looked for {job.mask})")
    else:
        hole = load_mask(job.mask, height, width)
    return image, hole


def run_batch(
    checkpoint: Checkpoint,
    jobs: list[Job],
    out_dir: Path,
    masks: MaskSource,
    settings: SearchSettings,
    blend: bool = True,
    batch_size: int = 16,
    crop: str = "auto",
) -> Iterator[dict]:
    """Inpaint the jobs, `batch_size` images per search; yields one report record per image."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / REPORT_FILE
    pending: list[tuple[Job, Image.Image, np.ndarray]] = []

    def record(entry: dict) -> dict:
        with open(report, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        return entry

    def flush() -> Iterator[dict]:
        started = time.perf_counter()
        try:
            results = fill_images(checkpoint, [(image, hole) for _, image, hole in pending], settings, blend, crop)
        except Exception as error:  # one bad batch must not end the run
            for job, _, _ in pending:
                yield record({"input": str(job.source), "output": str(job.output), "status": "failed", "error": f"{type(error).__name__}: {error}"})
            pending.clear()
            return
        for (job, _, _), result in zip(pending, results):
            save_image(result.image, job.output)
            yield record({
                "input": str(job.source), "output": str(job.output),
                "status": "unchanged" if result.notes else "ok",
                "context_loss": round(result.context_loss, 4), "perceptual_loss": round(result.perceptual_loss, 6),
                "framing": result.framing, "seconds": round((time.perf_counter() - started) / len(pending), 3),
                **({"note": "; ".join(result.notes)} if result.notes else {}),
            })
        pending.clear()

    for job in jobs:
        if job.output.exists():
            yield {"input": str(job.source), "output": str(job.output), "status": "skipped", "note": "output exists"}
            continue
        try:
            image, hole = _load(job, masks)
        except UserError as error:
            yield record({"input": str(job.source), "output": str(job.output), "status": "failed", "error": str(error)})
            continue
        pending.append((job, image, hole))
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()
