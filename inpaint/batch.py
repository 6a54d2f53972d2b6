"""Batch inpainting of a folder tree: pairing images with masks, resuming, and the report.

Output tree mirrors the input tree. A finished output is never redone: a rerun skips every image
whose output exists (outputs are written atomically, so an existing one is complete), which makes
an interrupted batch resume where it stopped; temporary files a kill left behind are removed.
Inputs are only read; a linked file or folder that leads out of the input folder is skipped, so
the outputs can never become inputs. OUT_DIR/report.jsonl holds one line per input, the latest
outcome (status ok | unchanged | skipped | failed, how the model's square was chosen, losses,
seconds, notes, error): "skipped" is an image with nothing to do (no mask, a link out of the
input folder), "failed" one that could not be filled (unreadable, a mask of another shape).

A face the finder misses is given per image in NAME_face.txt beside the image (or beside its mask
in --mask-dir): one line X,Y,W,H, the face's box in pixels, as `inpaint fill --face-box` takes it.

Under torchrun (run_batch_on_ranks) every rank plans the same jobs and fills its fixed share, by
each input's path relative to IN_DIR (ranks.share_of); rank K appends its records to
OUT_DIR/report.rankK.jsonl, and rank 0 merges the parts into report.jsonl when all are done (a
later run, with any number of processes, folds in the parts an interrupted one left). On the CPU
an image's fill does not depend on its batch-mates, so the outputs are those of one process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from inpaint.checkpoint import Checkpoint
from inpaint.engine import FaceBox, FillItem, FillRequest, FillResult, SearchedFills, host_workers, search_fills
from inpaint.errors import UserError
from inpaint.fileio import remove_stale_temporaries, write_text_atomic
from inpaint.images import find_images, save_image
from inpaint.jsonlog import append_record, parse_records
from inpaint.locate import parse_face_box
from inpaint.masks import MaskSource, open_with_hole
from inpaint.ranks import Link, share_of

REPORT_FILE = "report.jsonl"
PART_PREFIX = "report.rank"  # report.rankK.jsonl: rank K's records while a run on several processes goes on
MASK_SUFFIX = "_mask"
FACE_BOX_SUFFIX = "_face.txt"
STATUSES = ("ok", "unchanged", "done", "skipped", "failed")  # a record's outcomes


@dataclass
class Job:
    source: Path
    output: Path
    mask: Path | None  # None: the mask comes from a mask kind
    face_box: Path | None = None  # NAME_face.txt, when the user boxed the face
    skip: str | None = None  # why the image is not filled (a link out of the input folder)


def plan_jobs(in_dir: Path, out_dir: Path, masks: MaskSource) -> list[Job]:
    """Every image under in_dir (masks beside images, NAME_mask.*, are not inputs)."""
    if not in_dir.is_dir():
        raise UserError(f"{in_dir}: input folder does not exist")
    real_in, real_out = in_dir.resolve(), out_dir.resolve()
    if real_out == real_in or real_in in real_out.parents:
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
                candidates = [
                    masks.folder / relative.parent / f"{source.stem}{MASK_SUFFIX}.png",
                    masks.folder / relative.parent / f"{source.stem}.png",
                ]
                mask = next((c for c in candidates if c.is_file()), candidates[0])
            else:
                mask = by_stem.get(
                    (source.parent, source.stem + MASK_SUFFIX), source.parent / f"{source.stem}{MASK_SUFFIX}.png"
                )
        boxes = [source.parent / f"{source.stem}{FACE_BOX_SUFFIX}"]
        if masks.folder is not None:
            boxes.append(masks.folder / relative.parent / f"{source.stem}{FACE_BOX_SUFFIX}")
        real = source.resolve()
        skip = None
        if real_in not in real.parents:
            skip = f"a link to {real}, outside the input folder: not followed"
        elif real == real_out or real_out in real.parents:
            skip = "inside the output folder (through a link): not an input"
        jobs.append(Job(source, out_dir / relative, mask, next((b for b in boxes if b.is_file()), None), skip))
    if not jobs:
        raise UserError(f"{in_dir}: contains no images to inpaint")
    return jobs


def _load(job: Job, masks: MaskSource) -> tuple[Image.Image, np.ndarray, FaceBox | None]:
    image, hole = open_with_hole(job.source, masks, job.mask)
    face_box = None
    if job.face_box is not None:
        try:
            text = job.face_box.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"{job.face_box}: unreadable face box ({error})") from None
        face_box = parse_face_box(text, str(job.face_box))
    return image, hole, face_box


Pending = list[tuple[Job, tuple[Image.Image, np.ndarray, FaceBox | None]]]


def run_batch(
    checkpoint: Checkpoint,
    jobs: list[Job],
    out_dir: Path,
    masks: MaskSource,
    request: FillRequest,
    batch_size: int = 16,
    workers: int | None = None,
) -> Iterator[dict]:
    """Inpaint the jobs as `request` says, `batch_size` images per search; yields one report record
    per image. Only the results are written, so the unblended pictures are never kept. `workers`
    (None: engine.host_workers) threads do the per-photo host work; with more than one (a GPU
    search), a batch's fills are finished while the next batch searches."""
    recorded = prepare_output(out_dir)
    yield from process_jobs(checkpoint, jobs, out_dir / REPORT_FILE, recorded, masks, request, batch_size, workers)
    compact_report(out_dir / REPORT_FILE)


def prepare_output(out_dir: Path) -> set[str]:
    """Get OUT_DIR ready for a run: remove what killed writes left, fold the report parts of an
    interrupted run on several ranks into the report; returns the inputs the report holds. Only
    one process may do this, before any process writes there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    return merge_report_parts(out_dir)


def process_jobs(
    checkpoint: Checkpoint,
    jobs: list[Job],
    report: Path,
    recorded: set[str],
    masks: MaskSource,
    request: FillRequest,
    batch_size: int = 16,
    workers: int | None = None,
) -> Iterator[dict]:
    """run_batch's work on jobs, appending each record to `report` (the report, or one rank's part
    of it); `recorded`: the inputs the report held at the start (a finished output not among them is
    recorded as done)."""
    request = replace(request, keep_raw=False)
    workers = host_workers(checkpoint) if workers is None else workers

    def record(entry: dict) -> dict:
        append_record(report, entry)
        return entry

    def failed(batch: Pending, error: Exception) -> Iterator[dict]:  # one bad batch must not end the run
        for job, _ in batch:
            yield record(
                {
                    "input": str(job.source),
                    "output": str(job.output),
                    "status": "failed",
                    "error": f"{type(error).__name__}: {error}",
                }
            )

    def saved(batch: Pending, results: list[FillResult], seconds: float) -> Iterator[dict]:
        for (job, _), result in zip(batch, results):
            save_image(result.image, job.output)
            yield record(
                {
                    "input": str(job.source),
                    "output": str(job.output),
                    "status": "unchanged" if result.framing == "none" else "ok",
                    "context_loss": round(result.context_loss, 4),
                    "perceptual_loss": round(result.perceptual_loss, 6),
                    "framing": result.framing,
                    "adapted": result.adapted,
                    **({"view": result.view.describe()} if result.view else {}),
                    "seconds": round(seconds / len(batch), 3),
                    **({"note": "; ".join(result.notes)} if result.notes else {}),
                }
            )

    def start(batch: Pending, finisher: ThreadPoolExecutor | None) -> Callable[[], Iterator[dict]]:
        """Search the batch now and finish its fills (on `finisher` when there is one, while the
        caller goes on); returns what waits for them and yields the batch's records."""
        started = time.perf_counter()

        def finish(searched: SearchedFills, search_seconds: float) -> tuple[list[FillResult], float]:
            # Its own time: with a finisher, the next batch's search runs between search and finish.
            finishing = time.perf_counter()
            return searched.finish(workers), search_seconds + time.perf_counter() - finishing

        try:
            searched = search_fills(checkpoint, [FillItem(*item) for _, item in batch], request, workers=workers)
            seconds = time.perf_counter() - started
            outcome = finisher.submit(finish, searched, seconds) if finisher else finish(searched, seconds)
        except Exception as error:
            problem = error  # `error` is cleared when the except block ends
            return lambda: failed(batch, problem)

        def records() -> Iterator[dict]:
            try:
                if finisher:
                    results, seconds = outcome.result()
                else:
                    results, seconds = outcome
            except Exception as error:
                yield from failed(batch, error)
                return
            yield from saved(batch, results, seconds)

        return records

    pending: Pending = []
    in_flight: Callable[[], Iterator[dict]] | None = None
    with ThreadPoolExecutor(1) if workers > 1 else contextlib.nullcontext() as finisher:

        def flush() -> Iterator[dict]:
            nonlocal in_flight, pending
            searched = start(pending, finisher)  # with a finisher, the batch before finishes meanwhile
            pending = []
            if in_flight is not None:
                yield from in_flight()
            in_flight = None
            if finisher is None:  # finished already: written and recorded at once
                yield from searched()
            else:
                in_flight = searched

        for job in jobs:
            if job.output.exists():  # done by an earlier run: its record stays as it was
                entry = {"input": str(job.source), "output": str(job.output), "status": "done", "note": "output exists"}
                # A kill between writing an output and its report line leaves it unrecorded: record it now.
                yield entry if str(job.source) in recorded else record(entry)
                continue
            if job.skip is None and job.mask is not None and not job.mask.is_file():
                job.skip = f"no mask (looked for {job.mask})"
            if job.skip is not None:
                yield record(
                    {"input": str(job.source), "output": str(job.output), "status": "skipped", "note": job.skip}
                )
                continue
            try:
                item = _load(job, masks)
            except UserError as error:
                yield record(
                    {"input": str(job.source), "output": str(job.output), "status": "failed", "error": str(error)}
                )
                continue
            pending.append((job, item))
            if len(pending) >= batch_size:
                yield from flush()
        if pending:
            yield from flush()
        if in_flight is not None:
            yield from in_flight()


def report_part(out_dir: Path, rank: int) -> Path:
    """Where rank `rank` of a run on several processes writes its share of the report."""
    return out_dir / f"{PART_PREFIX}{rank}.jsonl"


def merge_report_parts(out_dir: Path, order: list[str] | None = None) -> set[str]:
    """Fold every rank's report part into OUT_DIR/report.jsonl (one line per input, the latest) and
    remove the parts; returns the inputs the report holds. A part a run on several processes left
    when it was interrupted is folded in by the next run, whatever its number of processes: each
    input has one rank, so no two parts hold the same one. `order`: the inputs in the order one
    process would have written them (the plan's); others follow in the order found."""
    report = out_dir / REPORT_FILE
    parts = sorted(out_dir.glob(f"{PART_PREFIX}*.jsonl"))
    if not parts:
        return compact_report(report)
    records = []
    for path in [report, *parts]:
        if path.exists():
            records += parse_records(path, _is_report_record)[0]
    latest = {record["input"]: record for record in records}
    if order is not None:
        rank = {name: index for index, name in enumerate(order)}
        latest = dict(sorted(latest.items(), key=lambda item: rank.get(item[0], len(rank))))
    write_text_atomic(report, "".join(json.dumps(record) + "\n" for record in latest.values()))
    for path in parts:  # after the merged report is in place: a kill in between only repeats the merge
        path.unlink(missing_ok=True)
    return set(latest)


def compact_report(path: Path) -> set[str]:
    """Keep one line per input in a batch report, its latest outcome (a rerun appends new ones);
    torn or foreign lines are dropped. Returns the inputs it holds."""
    if not path.exists():
        return set()
    records, bad = parse_records(path, _is_report_record)
    latest = {record["input"]: record for record in records}  # dicts keep first-seen order, values the latest
    if bad or len(latest) < len(records):
        write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in latest.values()))
    return set(latest)


def _is_report_record(record: dict) -> bool:
    return isinstance(record.get("input"), str)


def recorded_inputs(report: Path) -> set[str]:
    """The inputs a report holds, read without changing it."""
    return {r["input"] for r in parse_records(report, _is_report_record)[0]} if report.exists() else set()


def job_key(job: Job, in_dir: Path) -> str:
    """The input's path relative to IN_DIR, the same on every machine: what a job's rank is decided by."""
    return job.source.relative_to(in_dir).as_posix()


def run_batch_on_ranks(
    checkpoint: Checkpoint,
    jobs: list[Job],
    in_dir: Path,
    out_dir: Path,
    masks: MaskSource,
    request: FillRequest,
    link: Link,
    batch_size: int = 16,
    workers: int | None = None,
) -> Iterator[dict]:
    """run_batch for one rank of a torchrun launch: every rank plans the same jobs and takes its
    fixed share (ranks.share_of over the relative paths), reads and searches only those, and
    writes its records to its own report part as it goes; rank 0 prepares OUT_DIR before any rank
    starts and, when all are done, merges the parts into one report. Yields this rank's records;
    link.count() tallies every rank's, for rank 0's progress bar."""
    world = link.world
    keys = {job_key(job, in_dir): job for job in jobs}
    listing = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
    if world.is_main:
        prepare_output(out_dir)
        link.publish("listing", listing)
    if link.wait_for("listing") != listing:
        raise UserError(
            f"{in_dir}: the ranks found different files in it (it changed while they listed it, or it is "
            "not the same folder on every machine); run again"
        )
    recorded = recorded_inputs(out_dir / REPORT_FILE)
    mine = share_of(list(keys), world)
    own = [job for key, job in keys.items() if key in mine]
    part = report_part(out_dir, world.rank)
    for entry in process_jobs(checkpoint, own, part, recorded, masks, request, batch_size, workers):
        link.count(entry["status"])
        yield entry
    link.finish()
    if world.is_main:
        link.wait_for_all()
        merge_report_parts(out_dir, order=[str(job.source) for job in jobs])
