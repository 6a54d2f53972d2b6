"""Training a checkpoint's framer (inpaint.framer) on its own training images.

Each example is a synthetic photo seen through a square: a training face (the model's square of
a training image, with its own surroundings up to CONTEXT× as wide) is composited with a
feathered oval of random size over a random background, and viewed through a square that is the
true one turned, scaled and shifted at random; a hole of a kind the product meets (over the eyes,
the mouth or the face's centre, where the face template says those are; strokes, blobs, boxes; or
none) is blanked, filled with noise or a colour, or left intact. The target is where the true
square's reference points lie in the view, and whether there is a face at all (about one example
in eight is a view far off the face or of background alone). All of it is made in batches with
grid_sample, so the CPU spends its time on the network.

Randomness comes from (seed, step), so a resumed run sees exactly the examples an uninterrupted
one would. The run folder holds framer-state.pt (weights, optimiser, step; tensors only),
stats.jsonl, training_options.json and, at the end, model.safetensors: the checkpoint with the
framer and the face template added.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from inpaint.checkpoint import (
    WEIGHTS_FILE,
    Checkpoint,
    load_checkpoint,
    resave_checkpoint,
)
from inpaint.device import autocast, search_precision
from inpaint.errors import UserError
from inpaint.fileio import check_output, write_text_atomic
from inpaint.framer import INPUT, REFERENCE, FramerConfig, FramerNet
from inpaint.framing import compose, resize_map
from inpaint.locate import FaceTemplate, measure_template
from inpaint.masks import stroke_mask
from inpaint_training.data import decode_images
from inpaint_training.limits import FRAMER_LIMITS, check_all, flag
from inpaint_training.run_dir import NetworkState, StatsLog, remove_leftovers, split_files

CONTEXT = 1.25  # each training face keeps surroundings up to this many model squares wide
STATE_FILE = "framer-state.pt"
OPTIONS_FILE = "framer_options.json"
NEGATIVE_FRACTION = 0.12
ALIGNED_WITHIN = 0.1  # validation: reference points within this fraction of the view


@dataclass
class FramerOptions:
    checkpoint: str = ""
    data: str = ""
    out: str = ""
    val_count: int = 0
    steps: int = 20000
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 32
    seed: int = 0
    template_images: int = 1000
    log_every: int = 100
    checkpoint_every: int = 1000

    def validate(self) -> FramerOptions:
        check_all(self, FRAMER_LIMITS, flag)
        return self


# --- The synthetic examples ----------------------------------------------------------------------


class Examples:
    """Batches of (views (N, 4, 64, 64), reference points (N, 6), face (N,)) from inpaint_training faces."""

    def __init__(self, canvases: torch.Tensor, size: int, template: FaceTemplate) -> None:
        self.canvases = canvases  # (N, 4, K, K) uint8: RGB and validity, the model square in the middle
        self.size = size
        self.side = canvases.shape[-1]
        self.regions = template.regions(size)
        self.backgrounds = self._background_bank(np.random.default_rng(12345))

    def _background_bank(self, rng: np.random.Generator, count: int = 512) -> torch.Tensor:
        """Backgrounds with no face: flat colours, smooth and grainy noise, gradients, stripes, and
        the corners of training images (hair, clothes, walls), enlarged."""
        bank = []
        for i in range(count):
            kind = i % 5
            if kind == 0:
                picture = np.full((INPUT, INPUT, 3), rng.integers(0, 256, 3), np.float32)
            elif kind == 1:
                coarse = rng.random((int(rng.integers(2, 10)),) * 2 + (3,)).astype(np.float32) * 255
                picture = cv2.resize(coarse, (INPUT, INPUT), interpolation=cv2.INTER_CUBIC)
            elif kind == 2:
                picture = cv2.GaussianBlur(
                    rng.random((INPUT, INPUT, 3)).astype(np.float32) * 255, (0, 0), rng.uniform(0.5, 4)
                )
            elif kind == 3:
                ramp = np.linspace(0, 1, INPUT, dtype=np.float32)
                period = rng.uniform(4, 32)
                waves = 0.5 + 0.5 * np.sin(2 * np.pi * (ramp[:, None] * INPUT / period) + rng.uniform(0, 6))
                colours = rng.integers(0, 256, (2, 3)).astype(np.float32)
                picture = colours[0] + (colours[1] - colours[0]) * np.repeat(waves, INPUT, 1)[..., None]
                picture = cv2.warpAffine(
                    picture,
                    cv2.getRotationMatrix2D((INPUT / 2, INPUT / 2), rng.uniform(0, 180), 1.5),
                    (INPUT, INPUT),
                    borderMode=cv2.BORDER_REFLECT,
                )
            else:
                canvas = self.canvases[int(rng.integers(len(self.canvases)))].permute(1, 2, 0).numpy()
                corner = self.side // 4
                y = (
                    int(rng.choice([0, self.side - corner]))
                    if rng.random() < 0.5
                    else int(rng.integers(0, self.side - corner))
                )
                x = int(rng.choice([0, self.side - corner]))
                patch, valid = canvas[y : y + corner, x : x + corner, :3], canvas[y : y + corner, x : x + corner, 3]
                if valid.min() == 0:
                    patch = np.where(
                        valid[..., None] > 0, patch, patch[valid > 0].mean(0) if (valid > 0).any() else 128
                    )
                picture = cv2.resize(patch.astype(np.float32), (INPUT, INPUT), interpolation=cv2.INTER_CUBIC)
            bank.append(np.clip(picture, 0, 255))
        return torch.from_numpy(np.stack(bank)).permute(0, 3, 1, 2).contiguous()

    def _hole(self, rng: np.random.Generator) -> np.ndarray:
        """A hole in model pixels (size × size, float 0/1)."""
        size = self.size
        hole = np.zeros((size, size), np.float32)
        kind = rng.integers(8)
        if kind < 3:
            left, top, right, bottom = self.regions[("eyes", "mouth", "centre")[kind]]
            jitter = rng.normal(0, 0.06 * size, 4)
            cv2.rectangle(
                hole,
                (int(left + jitter[0]), int(top + jitter[1])),
                (int(right + jitter[2]), int(bottom + jitter[3])),
                1.0,
                -1,
            )
        elif kind == 3:
            hole = stroke_mask(size, size, rng).astype(np.float32)
        elif kind == 4:  # a blob
            centre = (int(rng.uniform(0.2, 0.8) * size), int(rng.uniform(0.2, 0.85) * size))
            axes = (max(1, int(rng.uniform(0.05, 0.3) * size)), max(1, int(rng.uniform(0.05, 0.3) * size)))
            cv2.ellipse(hole, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        elif kind == 5:  # a box anywhere
            left, top = rng.uniform(-0.1, 0.8, 2) * size
            cv2.rectangle(
                hole,
                (int(left), int(top)),
                (int(left + rng.uniform(0.1, 0.6) * size), int(top + rng.uniform(0.1, 0.5) * size)),
                1.0,
                -1,
            )
        return hole  # kinds 6, 7: no hole

    def batch(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size, side = self.size, self.side
        index = torch.from_numpy(rng.integers(0, len(self.canvases), n))
        canvases = self.canvases[index].float()
        flip = torch.from_numpy(rng.random(n) < 0.5)
        canvases[flip] = canvases[flip].flip(-1)
        offset = (side - size) / 2
        # canvas pixels → true view pixels (the model square at the framer's size)
        model_to_true = resize_map(INPUT / size)
        canvas_to_true = compose(model_to_true, np.array([[1.0, 0, -offset], [0, 1.0, -offset]]))
        thetas, targets, faces, hole_thetas = [], [], [], []
        for _ in range(n):
            spread = 1.0 if rng.random() < 0.5 else 0.25
            angle, scale = rng.uniform(-25, 25) * spread, math.exp(rng.uniform(-0.45, 0.45) * spread)
            shift = rng.uniform(-0.23, 0.23, 2) * INPUT * spread
            face = rng.random() >= NEGATIVE_FRACTION
            if not face:  # far off: the face tiny, huge or out of view
                angle, scale = rng.uniform(-60, 60), math.exp(rng.choice([-1, 1]) * rng.uniform(0.9, 1.8))
                shift = rng.uniform(-0.7, 0.7, 2) * INPUT
            view = cv2.getRotationMatrix2D(((INPUT - 1) / 2, (INPUT - 1) / 2), angle, scale)
            view[:, 2] += shift
            targets.append((REFERENCE @ view[:, :2].T + view[:, 2]).ravel())
            faces.append(1.0 if face else 0.0)
            thetas.append(_sampling_theta(compose(view, canvas_to_true), side, INPUT))
            hole_thetas.append(_sampling_theta(compose(view, model_to_true), size, INPUT))
        grid = F.affine_grid(torch.from_numpy(np.stack(thetas)).float(), (n, 4, INPUT, INPUT), align_corners=False)
        alpha = self._ovals(rng, n) * canvases[:, 3:4] / 255
        warped = F.grid_sample(
            torch.cat([canvases[:, :3], alpha], 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        holes = torch.from_numpy(np.stack([self._hole(rng) for _ in range(n)]))[:, None]
        hole_grid = F.affine_grid(
            torch.from_numpy(np.stack(hole_thetas)).float(), (n, 1, INPUT, INPUT), align_corners=False
        )
        hole = (
            F.grid_sample(holes, hole_grid, mode="bilinear", padding_mode="zeros", align_corners=False) > 0.01
        ).float()
        background = self.backgrounds[torch.from_numpy(rng.integers(0, len(self.backgrounds), n))].float()
        no_face = torch.from_numpy(np.array(faces) == 0) & torch.from_numpy(rng.random(n) < 0.5)
        weight = warped[:, 3:4].masked_fill(no_face[:, None, None, None], 0.0)  # half the negatives: background alone
        image = background * (1 - weight) + warped[:, :3] * weight
        image = self._degrade(rng, image)
        image = self._fill_holes(rng, image, hole)
        views = torch.cat([image.clamp(0, 255) / 127.5 - 1, hole], 1)
        return views, torch.from_numpy(np.stack(targets)).float(), torch.tensor(faces)

    def _ovals(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        """Feathered ovals of random size around the face (a quarter of them: the whole canvas)."""
        side, size = self.side, self.size
        ys, xs = torch.meshgrid(
            torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32), indexing="ij"
        )
        centre = (side - 1) / 2
        grow = torch.from_numpy(rng.uniform(0.85, 1.3, (n, 1, 1))).float()
        cy = centre + torch.from_numpy(rng.uniform(-0.02, 0.08, (n, 1, 1))).float() * size
        radius = (((xs - centre) / (0.46 * size * grow)) ** 2 + ((ys - cy) / (0.57 * size * grow)) ** 2).sqrt()
        feather = torch.from_numpy(rng.uniform(0.03, 0.15, (n, 1, 1))).float()
        oval = ((1 - radius) / feather).clamp(0, 1)
        whole = torch.from_numpy(rng.random(n) < 0.25)
        oval[whole] = 1.0
        return oval[:, None]

    @staticmethod
    def _degrade(rng: np.random.Generator, image: torch.Tensor) -> torch.Tensor:
        """Blur (enlarged photos), contrast and brightness, grey, grain."""
        n = image.shape[0]
        blur = torch.from_numpy(rng.random(n) < 0.3)
        if blur.any():
            small = F.interpolate(image[blur], scale_factor=0.5, mode="area")
            image[blur] = F.interpolate(small, size=image.shape[-2:], mode="bilinear", align_corners=False)
        gain = torch.from_numpy(rng.uniform(0.7, 1.3, (n, 1, 1, 1))).float()
        bias = torch.from_numpy(rng.uniform(-30, 30, (n, 1, 1, 1))).float()
        image = image * gain + bias
        grey = torch.from_numpy(rng.random(n) < 0.1)
        image[grey] = image[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
        grain = torch.from_numpy(rng.uniform(0, 8, (n, 1, 1, 1)) * (rng.random((n, 1, 1, 1)) < 0.3)).float()
        return image + grain * torch.from_numpy(rng.standard_normal(image.shape)).float()

    @staticmethod
    def _fill_holes(rng: np.random.Generator, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """What a damaged photo has in its hole: black, white, one colour, noise; or (a photo
        painted over in the app) its own pixels."""
        n = image.shape[0]
        kind = torch.from_numpy(rng.integers(0, 6, n))[:, None, None, None]
        colour = torch.from_numpy(rng.integers(0, 256, (n, 3, 1, 1))).float()
        noise = torch.from_numpy(rng.random(image.shape)).float() * 255
        content = torch.where(kind == 0, 0.0, torch.where(kind == 1, 255.0, torch.where(kind == 2, colour, noise)))
        return torch.where((hole > 0) & (kind < 4), content, image)


def _sampling_theta(source_to_view: np.ndarray, source_side: int, view_side: int) -> np.ndarray:
    """affine_grid's theta (view → source, in [-1, 1] coordinates) for a pixel map source → view."""

    def to_unit(side):
        return np.array([[2 / side, 0, 1 / side - 1], [0, 2 / side, 1 / side - 1], [0, 0, 1]])

    view_to_source = np.vstack([cv2.invertAffineTransform(source_to_view), [0, 0, 1]])
    return (to_unit(source_side) @ view_to_source @ np.linalg.inv(to_unit(view_side)))[:2]


# --- The run ------------------------------------------------------------------------------------


def _template(checkpoint: Checkpoint, faces_at_size: torch.Tensor, count: int) -> FaceTemplate:
    known = FaceTemplate.from_metadata(checkpoint.metadata.get("framing"))
    if known is not None:
        return known
    pick = np.linspace(0, len(faces_at_size) - 1, min(count, len(faces_at_size))).astype(int)
    images = faces_at_size[pick].permute(0, 2, 3, 1).numpy()
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, -1)
    return measure_template(np.ascontiguousarray(images))


def _validation(examples: Examples, net: FramerNet, seed: int, count: int = 512) -> dict[str, float]:
    """Mean reference-point error (view pixels) and the share within ALIGNED_WITHIN of the view,
    on a fixed set of examples (faces only); the face/background accuracy on all."""
    rng = np.random.default_rng(seed)
    net.eval()
    errors, correct, faces_seen = [], 0, 0
    with torch.no_grad():
        for _ in range(count // 64):
            views, targets, faces = examples.batch(rng, 64)
            out = net(views).float()
            face = faces > 0
            errors.append(
                (out[face, :6] - (targets[face] - torch.from_numpy(REFERENCE.ravel()).float()))
                .view(-1, 3, 2)
                .norm(dim=2)
                .max(1)
                .values
            )
            correct += int(((out[:, 6] > 0).float() == faces).sum())
            faces_seen += len(faces)
    net.train()
    error = torch.cat(errors)
    return {
        "point_error": round(float(error.mean()), 3),
        "aligned": round(float((error < ALIGNED_WITHIN * INPUT).float().mean()), 4),
        "face_accuracy": round(correct / faces_seen, 4),
    }


def train_framer(options: FramerOptions, resume: bool = False) -> Path:
    """Train a framer for options.checkpoint; returns the written checkpoint file."""
    options.validate()
    run = check_output(options.out, (options.data, options.checkpoint), folder=True, what="--out")
    checkpoint = load_checkpoint(options.checkpoint)
    size = checkpoint.config.image_size
    data = Path(options.data)
    files, held_out = split_files(data, options.val_count)
    run.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be good
    remove_leftovers(run)  # the temporary files of writes a kill interrupted
    canvases, _, _ = decode_images(files, size, 3, context=CONTEXT)
    if len(canvases) < 2:
        raise UserError(f"{data}: fewer than 2 of its images could be read")
    offset = (canvases.shape[-1] - size) // 2
    template = _template(
        checkpoint, canvases[:, :3, offset : offset + size, offset : offset + size], options.template_images
    )
    examples = Examples(canvases, size, template)
    check = (
        Examples(decode_images(held_out, size, 3, context=CONTEXT)[0], size, template)
        if len(held_out) >= 2
        else examples
    )
    write_text_atomic(
        run / OPTIONS_FILE,
        json.dumps({**asdict(options), "template_faces": template.images, "training_images": len(canvases)}, indent=2)
        + "\n",
    )

    torch.manual_seed(options.seed)
    net = FramerNet(FramerConfig(options.width))
    optimiser = torch.optim.Adam(net.parameters(), lr=options.lr / 10)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, options.lr, total_steps=options.steps, pct_start=0.15)
    state_file = run / STATE_FILE
    stats = StatsLog(run)
    state = NetworkState(state_file, options.steps, net=net, optimiser=optimiser, schedule=schedule)
    step = state.resume(stats, resume)
    precision = search_precision(torch.device("cpu"))
    net = net.to(memory_format=torch.channels_last)
    reference = torch.from_numpy(REFERENCE.ravel()).float()

    started, seen = time.perf_counter(), 0
    bar = tqdm(total=options.steps, initial=step, unit="step", desc="training the framer")
    try:
        while step < options.steps:
            rng = np.random.default_rng([options.seed, step])
            views, targets, faces = examples.batch(rng, options.batch_size)
            with autocast(torch.device("cpu"), precision):
                out = net(views.contiguous(memory_format=torch.channels_last)).float()
            face = faces > 0
            point_loss = F.smooth_l1_loss(out[face, :6], targets[face] - reference)
            face_loss = F.binary_cross_entropy_with_logits(out[:, 6], faces)
            loss = point_loss + 0.5 * face_loss
            if not torch.isfinite(loss):
                raise UserError(
                    f"the framer's loss became {float(loss)} at step {step}; the last snapshot is kept in {state_file}"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            seen += len(views)
            bar.update(1)
            if step % options.log_every == 0 or step == options.steps:
                record = {
                    "step": step,
                    "point_loss": round(point_loss.item(), 4),
                    "face_loss": round(face_loss.item(), 4),
                    "examples_per_second": round(seen / (time.perf_counter() - started), 1),
                }
                if step % options.checkpoint_every == 0 or step == options.steps:
                    record.update(_validation(check, net, options.seed + 1))
                    state.save(step)
                stats.append(record)
                bar.set_postfix({k: v for k, v in record.items() if k in ("point_loss", "point_error", "aligned")})
    except KeyboardInterrupt:
        state.save(step)
        bar.close()
        raise
    bar.close()
    net = net.to(memory_format=torch.contiguous_format)
    final = _validation(check, net, options.seed + 1)
    path = run / WEIGHTS_FILE
    recipe = {k: getattr(options, k) for k in ("val_count", "steps", "batch_size", "lr", "width", "seed")}
    training = {
        **checkpoint.training,
        "framer": {
            "steps": options.steps,
            "images": len(canvases),
            "held_out": len(held_out),
            "options": recipe,
            "seconds": round(time.perf_counter() - started, 1),
            **final,
        },
    }
    resave_checkpoint(checkpoint, path, training, template.to_metadata(), framer=net)
    return path
