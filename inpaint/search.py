"""The latent search of semantic inpainting (Yeh et al., CVPR 2017).

For each image y with known-pixel mask M, find z minimising
    L(z) = ‖W ⊙ (G(z) − y)‖₁  +  λ · log(1 − D(G(z)))
where W is zero in the hole and, on a known pixel, the fraction of its neighbourhood that is
missing (known pixels next to the hole count most). The paper's neighbourhood is 7×7; here it is
at least that and grows with the hole (its half-width is the farthest any missing pixel lies from
a known one), so a large hole is matched against a band of context as wide as itself: for half a
face, a 7×7 window would see only 3 columns next to the cut. G and D stay frozen in eval mode, so an
image's result never depends on its batch-mates (on the CPU to the bit, whatever the thread count:
see _Search.losses); losses are summed per image, never averaged over the batch, so λ means the
same at any batch size. z stays in the prior's support (clipped back into [-1, 1] after every
step, or reparametrised as z = tanh(u)).

Every image gets several starts (restarts), all searched in one batch and ranked by their context
loss. With an inpainting encoder in the checkpoint (inpaint.encoder) the starts are E's prediction
and jittered copies of it, and a short refinement suffices; without one they are seeded random
draws from the prior and the search runs longer. Each start keeps the best latent it has met. An
image stops early once none of its starts has lowered its best context loss by `tolerance`
(relative) over the last `patience` iterations, or once its own iteration budget is spent.

How a stopped image leaves is the batching: on the CPU its rows leave the batch, so it costs nothing
more ("shrink"); on a GPU every step keeps one shape and the stopped rows are masked ("fixed"), so a
step reads nothing back to the host and is recorded once as a CUDA graph and replayed (a step of a
64×64 DCGAN is hundreds of small kernels: launching them one by one, not computing, is what costs).
Either way an image's batch-mates carry on unchanged.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inpaint.checkpoint import Checkpoint
from inpaint.device import autocast, batch_invariant_rows, pad_rows, search_precision
from inpaint.errors import UserError

CONSTRAINTS = ("clip", "tanh")
INITS = ("auto", "encoder", "random")
# (iterations, restarts) when the settings leave them open, by where the search starts; chosen by
# benchmarks/inpaint_quality.py --sweep (README, "Choosing the search defaults").
ENCODER_START = (25, 1)
RANDOM_START = (300, 4)
# Scattered holes (80% of the pixels missing at random) leave known pixels next to every missing
# one: the context then pins the face down, and the search keeps improving it well past the 25
# iterations that suit compact holes, where longer searches only fit the surroundings better
# (sweep-encoder.json: random 25 → 100 iterations +0.7 dB in the hole; centre −0.1 dB). A hole is
# scattered when its missing pixels lie on average within SCATTERED_REACH pixels of a known one.
ENCODER_SCATTERED = 100
SCATTERED_REACH = 2.0
BATCHINGS = ("auto", "shrink", "fixed")


@dataclass(frozen=True)
class SearchSettings:
    iterations: int | None = None  # None: ENCODER_START or RANDOM_START, by where the search starts
    scattered_iterations: int | None = (
        None  # for scattered holes; None: ENCODER_SCATTERED from the encoder, else `iterations`
    )
    restarts: int | None = None  # starts per image, searched together and ranked by context loss
    lam: float = 0.003
    lr: float = 0.03
    seed: int = 0
    top_k: int = 4
    constraint: str = "clip"
    neighbourhood: int | str = "auto"  # side of W's window: "auto" scales it to each hole (≥ 7), or a fixed odd size
    weighting: str = "neighbourhood"  # or "uniform": every known pixel weighs 1 (projection of a whole image)
    precision: str = "auto"  # see inpaint.device.search_precision
    report_every: int = 25
    # "encoder": E's prediction and jittered copies; "random": prior draws; "auto": E when the checkpoint has one
    init: str = "auto"
    jitter: float = 0.2  # spread of the jittered starts around E's prediction, in units of the prior's scale
    patience: int = 15  # an image stops after this many iterations without improvement (0: never stops early)
    tolerance: float = 0.002  # the relative fall of the context loss that counts as an improvement
    # "shrink": stopped images leave the batch; "fixed": every step keeps its shape (CUDA graphs);
    # "auto": fixed on CUDA, shrink elsewhere. The results are the same up to rounding.
    batching: str = "auto"


def resolve_settings(checkpoint: Checkpoint, settings: SearchSettings) -> SearchSettings:
    """The settings with `init` made concrete and open iteration and restart counts filled in."""
    if settings.init not in INITS:
        raise UserError(f"search start must be one of {', '.join(INITS)}, not {settings.init!r}")
    init = settings.init
    if init == "auto":
        init = "encoder" if checkpoint.encoder is not None else "random"
    if init == "encoder" and checkpoint.encoder is None:
        raise UserError(
            f"{checkpoint.path}: has no inpainting encoder to start the search from (train one with "
            "`inpaint train-encoder`, or start from random latents)"
        )
    iterations, restarts = ENCODER_START if init == "encoder" else RANDOM_START
    scattered = ENCODER_SCATTERED if init == "encoder" else iterations
    if settings.iterations is not None:  # a count the user chose holds for every hole
        iterations = scattered = settings.iterations
    return replace(
        settings,
        init=init,
        iterations=iterations,
        scattered_iterations=scattered if settings.scattered_iterations is None else settings.scattered_iterations,
        restarts=restarts if settings.restarts is None else settings.restarts,
    )


def hole_reach(known: torch.Tensor) -> np.ndarray | None:
    """For one mask (1, H, W), 1 = known: each missing pixel's distance to the nearest known pixel
    (a flat array), or None when nothing or everything is missing."""
    hole = (known[0] < 0.5).cpu().numpy()
    if not hole.any() or hole.all():
        return None
    return cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)[hole]


def is_scattered(reach: np.ndarray | None) -> bool:
    """Whether a hole, given by its pixels' distances to the known ones (hole_reach), is scattered:
    its missing pixels lie on average within SCATTERED_REACH pixels of a known one."""
    return reach is not None and float(reach.mean()) <= SCATTERED_REACH


def scattered_holes(known: torch.Tensor) -> torch.Tensor:
    """(N,) bool: which masks (N, 1, H, W), 1 = known, are scattered (see is_scattered)."""
    return torch.tensor([is_scattered(hole_reach(mask)) for mask in known], dtype=torch.bool)


@dataclass
class SearchProgress:
    iteration: int
    iterations: int
    context_loss: torch.Tensor  # (N,) best restart's context loss so far
    current: torch.Tensor  # (N, C, S, S) G(z) of each image's current best restart, model space
    restart_context_loss: torch.Tensor  # (N, k) every restart's best context loss so far
    restart_images: torch.Tensor  # (N, k, C, S, S) G(z) of every restart's best latent so far, model space
    active: int  # images still searching (the others stopped early)


@dataclass
class SearchResult:
    images: torch.Tensor  # (N, C, S, S) G(ẑ) of the best restart, model space
    z: torch.Tensor  # (N, latent_dim)
    context_loss: torch.Tensor  # (N,)
    perceptual_loss: torch.Tensor  # (N,) λ·log(1 − D(G(ẑ)))
    candidates: torch.Tensor  # (N, k, C, S, S), best first
    candidate_z: torch.Tensor  # (N, k, latent_dim)
    candidate_context_loss: torch.Tensor  # (N, k)
    iterations: torch.Tensor  # (N,) iterations each image ran before it stopped

    def row(self, index: int) -> SearchResult:
        """Image `index`'s result alone, as a batch of one."""
        return SearchResult(**{f.name: getattr(self, f.name)[index : index + 1] for f in fields(self)})


def context_weights(known: torch.Tensor, size: int = 7) -> torch.Tensor:
    """W for masks (N, 1, H, W) with 1 = known: 0 in the hole; on a known pixel the fraction of its
    size×size neighbourhood (the part inside the image) that is missing. Box sums on the host by
    OpenCV (running sums: the cost does not grow with the window, which reaches 65 pixels for half
    a face); returned on the masks' device."""
    masks = known.detach().float().cpu().numpy()
    window, border = (size, size), cv2.BORDER_CONSTANT  # outside the image: neither missing nor present
    weights = np.empty_like(masks)
    for i, mask in enumerate(masks[:, 0]):
        missing = cv2.boxFilter(1 - mask, -1, window, normalize=False, borderType=border)
        present = cv2.boxFilter(np.ones_like(mask), -1, window, normalize=False, borderType=border)
        weights[i, 0] = mask * missing / present
    return torch.from_numpy(weights).to(known.device)


def window_for(reach: np.ndarray | None, smallest: int = 7) -> int:
    """The window side for a hole given by hole_reach: 2r + 1, where r is the largest distance from a
    missing pixel to the nearest known pixel, and never below `smallest`."""
    return smallest if reach is None else max(smallest, 2 * math.ceil(float(reach.max())) + 1)


def hole_neighbourhood(known: torch.Tensor, smallest: int = 7) -> int:
    """The window side for one mask (1, H, W), 1 = known (see window_for)."""
    return window_for(hole_reach(known), smallest)


MAX_NEIGHBOURHOOD = 255  # wider than any model's image: a larger window only costs time


def parse_neighbourhood(text: str) -> int | str:
    """A window setting as typed by a user: "auto" or an odd number of pixels."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1 or int(text) % 2 == 0 or int(text) > MAX_NEIGHBOURHOOD:
        raise ValueError(f"must be auto or an odd number of pixels up to {MAX_NEIGHBOURHOOD}, not {text!r}")
    return int(text)


def weights_for(
    known: torch.Tensor, neighbourhood: int | str = "auto", reaches: list[np.ndarray | None] | None = None
) -> torch.Tensor:
    """W for a batch of masks (N, 1, H, W), each with its own window when `neighbourhood` is "auto"
    (from the masks' hole_reach, given or computed here)."""
    if neighbourhood != "auto":
        return context_weights(known, int(neighbourhood))
    reaches = [hole_reach(mask) for mask in known] if reaches is None else reaches
    return torch.cat([context_weights(mask[None], window_for(reach)) for mask, reach in zip(known, reaches)])


def _prior_init(checkpoint: Checkpoint, n_images: int, settings: SearchSettings) -> torch.Tensor:
    """Starting latents: restart r of every image starts from the same seeded draw, so an image's
    search never depends on which other images share its batch."""
    generator = torch.Generator().manual_seed(settings.seed)
    z0 = checkpoint.prior.sample(settings.restarts, checkpoint.config.latent_dim, generator)
    return z0.repeat(n_images, 1)


def _encoder_init(
    checkpoint: Checkpoint, images: torch.Tensor, known: torch.Tensor, settings: SearchSettings
) -> torch.Tensor:
    """Starting latents around E's prediction: restart 0 is the prediction itself, restart r > 0
    adds `jitter` times the r-th seeded prior draw (the same offsets for every image, and the same
    first offsets whatever the number of restarts)."""
    predicted = checkpoint.encoder.predict(images, known).cpu()
    generator = torch.Generator().manual_seed(settings.seed)
    dim = checkpoint.config.latent_dim
    offsets = [torch.zeros(dim)] + [checkpoint.prior.sample(1, dim, generator)[0] for _ in range(settings.restarts - 1)]
    z0 = predicted[:, None] + settings.jitter * torch.stack(offsets)[None]
    if checkpoint.prior.kind == "uniform":
        z0 = z0.clamp(-1, 1)
    return z0.flatten(0, 1)


def resolve_batching(device: torch.device, batching: str) -> str:
    """ "shrink" or "fixed" for a search on `device` (see SearchSettings.batching)."""
    if batching not in BATCHINGS:
        raise UserError(f"search batching must be one of {', '.join(BATCHINGS)}, not {batching!r}")
    if batching == "auto":
        return "fixed" if device.type == "cuda" else "shrink"
    return batching


class _Search:
    """The state of one search, all on the device: the latents being optimised (n images × k starts,
    one row each), each row's best latent and context loss so far, and which images still search.

    `iterate` is one iteration: score the current latents (each row keeps its best), stop the images
    whose budget or patience has run out, then take one Adam step. Under "fixed" batching it reads
    nothing back to the host and allocates the same tensors every time, so CUDA can record it once
    as a graph and replay it; under "shrink" it computes only the rows still searching."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        settings: SearchSettings,
        targets: torch.Tensor,
        weights: torch.Tensor,
        z0: torch.Tensor,
        budget: torch.Tensor,
        batching: str,
        precision: str,
    ) -> None:
        self.generator, self.discriminator = checkpoint.generator, checkpoint.discriminator
        self.settings, self.batching, self.precision = settings, batching, precision
        self.targets, self.weights, self.budget = targets, weights, budget
        self.n, self.k = budget.shape[0], settings.restarts
        device = self.device = z0.device
        bounded = checkpoint.prior.kind == "uniform"
        self.tanh = bounded and settings.constraint == "tanh"
        self.clip = bounded and settings.constraint == "clip"
        self.variable = (torch.atanh(z0.clamp(-0.999, 0.999)) if self.tanh else z0.clone()).requires_grad_(True)
        # Adam is elementwise, so a row's steps depend only on its own gradients; the rows of stopped
        # images are never scored again (each row's best latent is kept apart). Under "fixed"
        # batching (the CUDA-graph path) the fused kernel does the update in one go and keeps its step
        # count on the device (the plain one reads it back to the host every step); _Replayed makes
        # it capturable while a CUDA graph records it. Under "shrink" the plain one: the fused CPU
        # kernel rounds the elements past its last full vector differently, so a latent's steps
        # would depend on how many rows are left.
        fused = True if batching == "fixed" and device.type in ("cpu", "cuda") else None
        self.optimiser = torch.optim.Adam([self.variable], lr=settings.lr, fused=fused)
        rows = self.n * self.k
        self.best_z = z0.detach().clone()
        self.best_context = torch.full((rows,), math.inf, device=device)
        # A row gains when its loss has fallen by `tolerance` since its last gain; an image whose rows
        # have not gained for `patience` iterations has fallen by less than that over those iterations.
        self.reference = torch.full((rows,), math.inf, device=device)
        self.last_gain = torch.zeros(rows, dtype=torch.long, device=device)
        self.active = torch.ones(self.n, dtype=torch.bool, device=device)
        self.ran = budget.clone()  # iterations each image ran; set when it stops
        self.step = torch.zeros((), dtype=torch.long, device=device)  # the iteration, counted on the device

    def latents(self) -> torch.Tensor:
        return torch.tanh(self.variable) if self.tanh else self.variable

    def row_mask(self, per_image: torch.Tensor) -> torch.Tensor:
        """(n·k,) from (n,): an image's value on each of its rows (no host sync)."""
        return per_image[:, None].expand(self.n, self.k).reshape(-1)

    def searching_rows(self) -> torch.Tensor | None:
        """Under "shrink", the rows still searching (None while every image is: no copies then);
        under "fixed", always None (every row is computed, stopped ones masked)."""
        if self.batching == "fixed" or bool(self.active.all()):
            return None
        return self.row_mask(self.active).nonzero().squeeze(1)

    def losses(self, z: torch.Tensor, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """G(z), context and perceptual losses of the given rows (None: all of them)."""
        # Padded so that each row's result is the same bits whatever its batch-mates (and, on the
        # CPU, the thread count): an image's fill must not depend on the images searched with it.
        count = len(z)
        z = pad_rows(z, batch_invariant_rows(count, self.device))
        # No autocast weight cache: each forward is its own region, and a cache cannot be replayed.
        with autocast(self.device, self.precision, cache=False):
            fake = self.generator(z)
            logits = self.discriminator(fake.contiguous(memory_format=torch.channels_last))
        fake, logits = fake[:count].float(), logits[:count].float()
        w, y = (self.weights, self.targets) if rows is None else (self.weights[rows], self.targets[rows])
        context = (w * (fake - y).abs()).flatten(1).sum(1)
        perceptual = -self.settings.lam * F.softplus(logits)  # λ·log(1 − sigmoid(logits)), stable form
        return fake, context, perceptual

    def keep_best(self, z: torch.Tensor, context: torch.Tensor, rows: torch.Tensor | None) -> None:
        """Each scored row keeps its latent if it is its best so far, and notes a gain. `rows` are the
        rows of z (None: all of them); under "fixed" only the searching images' rows count."""
        tolerance = self.settings.tolerance
        reference = self.reference if rows is None else self.reference[rows]
        best_context = self.best_context if rows is None else self.best_context[rows]
        best_z = self.best_z if rows is None else self.best_z[rows]
        last_gain = self.last_gain if rows is None else self.last_gain[rows]
        gained = context < reference * (1 - tolerance)
        better = context < best_context
        if self.batching == "fixed":
            scored = self.row_mask(self.active)
            gained, better = gained & scored, better & scored
        updates = (
            (self.reference, torch.where(gained, context, reference)),
            (self.last_gain, torch.where(gained, self.step, last_gain)),
            (self.best_context, torch.where(better, context, best_context)),
            (self.best_z, torch.where(better[:, None], z, best_z)),
        )
        for target, value in updates:  # in place: a replayed graph keeps its tensors
            if rows is None:
                target.copy_(value)
            else:
                target[rows] = value

    def stop_finished(self) -> None:
        """Images whose budget is spent, or that stopped gaining for `patience` iterations, stop here."""
        finished = self.budget <= self.step
        if self.settings.patience:
            stalled = self.step - self.last_gain.view(self.n, self.k).max(1).values
            finished = finished | (stalled >= self.settings.patience)
        self.ran.copy_(torch.where(self.active & finished, self.step, self.ran))
        self.active &= ~finished

    def score(self) -> None:
        """Score the current latents of the searching images and stop those that are done (no step)."""
        if self.batching == "shrink" and not bool(self.active.any()):
            return
        with torch.no_grad():
            rows = self.searching_rows()
            z = self.latents() if rows is None else self.latents()[rows]
            self.keep_best(z, self.losses(z, rows)[1], rows)
            self.stop_finished()

    def iterate(self) -> None:
        """One iteration: score the current latents (the same forward pass gives the gradient), stop
        the images that are done, take an Adam step, count the iteration."""
        rows = self.searching_rows()
        z = self.latents() if rows is None else self.latents()[rows]
        _, context, perceptual = self.losses(z, rows)
        self.keep_best(z.detach(), context.detach(), rows)
        self.stop_finished()
        # A sum: each latent sees only its own loss. Only z's gradient is taken, so G's and D's
        # weights are never touched, whatever their requires_grad. Rows of images that stopped just
        # now still step, harmlessly: they are never scored again.
        (self.variable.grad,) = torch.autograd.grad((context + perceptual).sum(), [self.variable])
        self.optimiser.step()
        if self.clip:
            with torch.no_grad():
                self.variable.clamp_(-1, 1)  # in place: z stays in the prior's support
        self.step += 1

    def progress(self, iteration: int, iterations: int, shape: torch.Size) -> SearchProgress:
        """What the callback sees after the latents of `iteration` were scored (reads the state back)."""
        n, k = self.n, self.k
        with torch.no_grad(), autocast(self.device, self.precision, cache=False):
            every = self.generator(self.best_z).float().view(n, k, *shape).cpu()
        per_image = self.best_context.view(n, k).cpu()
        current = every[torch.arange(n), per_image.argmin(1)]
        return SearchProgress(
            iteration, iterations, per_image.min(1).values, current, per_image, every, int(self.active.sum())
        )


GRAPH_WARMUP = 3  # eager iterations before a step is captured: Adam's state and cuDNN's choices exist by then
# One search at a time records or replays graphs on CUDA in this process: a capture must not overlap
# another thread's capture or device-wide synchronisation (the app serves two requests at once).
_CUDA_GRAPH_LOCK = threading.Lock()
_graphs_broken = False  # set by a failed capture: the allocator's state after one cannot be trusted


def cuda_graphs_enabled() -> bool:
    """Whether a fixed-shape search on CUDA replays its step as a CUDA graph: not when
    INPAINT_CUDA_GRAPHS=0, nor after a capture failed in this process."""
    return os.environ.get("INPAINT_CUDA_GRAPHS", "1") != "0" and not _graphs_broken


class _Replayed:
    """A step (which reads nothing back to the host and keeps its tensors in place) run eagerly for
    GRAPH_WARMUP calls on a side stream, then captured once as a CUDA graph and replayed: one launch
    per iteration instead of hundreds, so small batches stop being bound by launch latency. A
    capture that fails warns, restores the stream and runs the step eagerly from then on (and no
    later search in this process tries again). The caller holds _CUDA_GRAPH_LOCK and has `device`
    as the current CUDA device."""

    def __init__(self, step: Callable[[], None], optimiser: torch.optim.Optimizer, device: torch.device) -> None:
        self.step, self.optimiser, self.device = step, optimiser, device
        self.side = torch.cuda.Stream(device)  # one for all warm-up calls: its cached blocks are reused
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager = False

    def _capturable(self, on: bool) -> None:
        # Adam must be capturable while a graph records it; outside a capture torch warns about a
        # capturable optimiser, so the flag is set only around the capture (the fused kernel keeps
        # its step count on the device either way).
        for group in self.optimiser.param_groups:
            group["capturable"] = on

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        if self.eager:
            self.step()
            return
        main = torch.cuda.current_stream(self.device)
        if self.calls < GRAPH_WARMUP:
            self.side.wait_stream(main)
            with torch.cuda.stream(self.side):
                self.step()
            main.wait_stream(self.side)
            self.calls += 1
            return
        graph = torch.cuda.CUDAGraph()
        self._capturable(True)
        try:
            with torch.cuda.graph(graph, stream=torch.cuda.Stream(self.device), capture_error_mode="thread_local"):
                self.step()
        except Exception as error:  # capture is not promised for every op and driver: stay eager
            global _graphs_broken
            _graphs_broken = True
            torch.cuda.set_stream(main)  # a failed capture leaves its stream current
            self._capturable(False)
            cause = error.__context__ or error  # capture_end's complaint hides the first error
            warnings.warn(
                f"the search step could not be recorded as a CUDA graph ({cause}); searches run eagerly from now on",
                stacklevel=2,
            )
            torch.cuda.synchronize(self.device)
            self.eager = True
            self.step()
            return
        self.graph = graph
        graph.replay()  # capture records without running: this iteration runs now


@contextlib.contextmanager
def graphed(
    step: Callable[[], None], optimiser: torch.optim.Optimizer, device: torch.device, calls: int
) -> Iterator[Callable[[], None]]:
    """`step` (which reads nothing back to the host and keeps its tensors in place) as it should be
    called `calls` times on `device`: on CUDA, replayed as a CUDA graph (holding the process's graph
    lock, with `device` current) unless graphs are off or it runs too few times to pay; elsewhere as
    it is."""
    if device.type != "cuda" or not cuda_graphs_enabled() or calls <= GRAPH_WARMUP:
        yield step
        return
    with _CUDA_GRAPH_LOCK, torch.cuda.device(device):
        yield _Replayed(step, optimiser, device)


def search(
    checkpoint: Checkpoint,
    images: torch.Tensor,
    known: torch.Tensor,
    settings: SearchSettings = SearchSettings(),
    callback: Callable[[SearchProgress], bool | None] | None = None,
) -> SearchResult:
    """Inpaint a batch. images (N, C, S, S) in model space; known (N, 1, S, S), 1 = known pixel.

    `callback` gets a SearchProgress for the starting points (iteration 0) and then every
    `report_every` iterations; returning True stops the search there.
    The caller's networks are used as they are (eval mode, no gradients; see load_checkpoint)."""
    settings = resolve_settings(checkpoint, settings)
    generator, discriminator = checkpoint.generator, checkpoint.discriminator
    if discriminator is None:
        raise ValueError("the latent search needs the checkpoint's discriminator")
    if generator.training or discriminator.training:  # BatchNorm in training mode would mix batch-mates
        raise ValueError("the latent search needs G and D in eval mode")
    device = next(generator.parameters()).device
    batching = resolve_batching(device, settings.batching)
    known = known.cpu()  # the masks' per-image work (distances, windows) is done once, on the host
    reaches = [hole_reach(mask) for mask in known]
    # Each image's own iteration budget (scattered holes search longer); the loop runs to the largest.
    scattered = torch.tensor([is_scattered(reach) for reach in reaches], dtype=torch.bool)
    budget = torch.where(scattered, settings.scattered_iterations, settings.iterations)
    iterations = int(budget.max()) if len(budget) else 0
    graphs = batching == "fixed" and device.type == "cuda" and cuda_graphs_enabled() and iterations > GRAPH_WARMUP
    with contextlib.ExitStack() as held:
        if graphs:
            held.enter_context(_CUDA_GRAPH_LOCK)
            held.enter_context(torch.cuda.device(device))  # graphs record on the current device's streams
        return _search(checkpoint, images, known, settings, callback, reaches, budget, batching, graphs)


def _search(
    checkpoint: Checkpoint,
    images: torch.Tensor,
    known: torch.Tensor,
    settings: SearchSettings,
    callback: Callable[[SearchProgress], bool | None] | None,
    reaches: list[np.ndarray | None],
    budget: torch.Tensor,
    batching: str,
    graphs: bool,
) -> SearchResult:
    """search() once its settings, the holes' reaches and budgets and the batching are known."""
    device = next(checkpoint.generator.parameters()).device
    precision = search_precision(device, settings.precision)
    n, k = images.shape[0], settings.restarts
    if settings.weighting == "uniform":
        weights = known.float()
    else:
        weights = weights_for(known, settings.neighbourhood, reaches)
    weights = weights.repeat_interleave(k, 0).to(device)
    targets = images.to(device).repeat_interleave(k, 0).contiguous(memory_format=torch.channels_last)
    if settings.init == "encoder":
        z0 = _encoder_init(checkpoint, images, known, settings).to(device)
    else:
        z0 = _prior_init(checkpoint, n, settings).to(device)
    iterations = int(budget.max()) if n else 0
    run = _Search(checkpoint, settings, targets, weights, z0, budget.to(device), batching, precision)
    step = _Replayed(run.iterate, run.optimiser, device) if graphs else run.iterate

    stopped_by_callback = False
    reported = -1
    for iteration in range(iterations):
        # Under "shrink" the host checks every iteration whether any image still searches (a CPU
        # reads its own memory); under "fixed" only at reporting points, where the host reads anyway.
        if batching == "shrink" and not bool(run.active.any()):
            break
        step()
        if iteration % settings.report_every == 0:
            if callback is not None:
                reported = iteration
                if callback(run.progress(iteration, iterations, images.shape[1:])):
                    stopped_by_callback = True
                    break
            if batching == "fixed" and not bool(run.active.any()):
                break
    run.score()  # the latents after the last step, of the images still searching
    run.ran.copy_(torch.where(run.active, run.step, run.ran))  # stopped by the callback: as far as they got
    if callback is not None and not stopped_by_callback and int(run.step) != reported:
        callback(run.progress(int(run.step), iterations, images.shape[1:]))

    with torch.no_grad():
        fake, context, perceptual = run.losses(run.best_z, None)
    context, perceptual = context.view(n, k), perceptual.view(n, k)
    order = context.argsort(dim=1)  # ranked by the context loss
    top = order[:, : max(1, min(settings.top_k, k))]
    image_rows = torch.arange(n, device=device)[:, None]
    fake = fake.view(n, k, *fake.shape[1:])
    z = run.best_z.view(n, k, -1)
    return SearchResult(
        images=fake[image_rows[:, 0], order[:, 0]].cpu(),
        z=z[image_rows[:, 0], order[:, 0]].cpu(),
        context_loss=context[image_rows[:, 0], order[:, 0]].cpu(),
        perceptual_loss=perceptual[image_rows[:, 0], order[:, 0]].cpu(),
        candidates=fake[image_rows, top].cpu(),
        candidate_z=z[image_rows, top].cpu(),
        candidate_context_loss=context[image_rows, top].cpu(),
        iterations=run.ran.cpu(),
    )


# --- How many images one search takes at once ------------------------------------------------------

CPU_BATCH = 16  # on the CPU a step's time grows with the batch from the start: small batches show progress sooner
MAX_AUTO_BATCH = 1024  # on a GPU a step's time grows linearly past this size (gains end, latency grows)
MEMORY_SHARE = 0.5  # of the free GPU memory: room for the graph's pool, the photos and other processes


def batch_size_for(free_bytes: int, bytes_per_image: int, cap: int = MAX_AUTO_BATCH) -> int:
    """Images per search that fit MEMORY_SHARE of `free_bytes` at `bytes_per_image`; 1 to `cap`."""
    return max(1, min(cap, int(free_bytes * MEMORY_SHARE) // max(1, bytes_per_image)))


def search_bytes_per_image(checkpoint: Checkpoint, settings: SearchSettings, probe: int = 8) -> int:
    """The GPU memory one image's search takes at its peak, measured by searching `probe` blank
    images for a couple of steps (all its starts, activations and gradients included)."""
    device = next(checkpoint.generator.parameters()).device
    size, channels = checkpoint.config.image_size, checkpoint.config.channels
    known = torch.ones(probe, 1, size, size)
    known[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    # Past the warm-up, so that a CUDA graph's memory pool is counted too.
    steps = GRAPH_WARMUP + 2
    probe_settings = replace(settings, iterations=steps, scattered_iterations=steps, patience=0)
    search(checkpoint, torch.zeros(probe, channels, size, size), known, probe_settings)
    torch.cuda.synchronize(device)
    return -(-(torch.cuda.max_memory_allocated(device) - base) // probe)


def auto_batch_size(checkpoint: Checkpoint, settings: SearchSettings) -> int:
    """Images per search: CPU_BATCH off CUDA; on CUDA as many as half the free memory holds (capped)."""
    device = next(checkpoint.generator.parameters()).device
    if device.type != "cuda":
        return CPU_BATCH
    settings = resolve_settings(checkpoint, settings)
    free, _ = torch.cuda.mem_get_info(device)
    return batch_size_for(free, search_bytes_per_image(checkpoint, settings))
