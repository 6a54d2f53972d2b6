"""The latent search: weighting, independence from batch-mates, support of z, ranking, callbacks."""

from __future__ import annotations

import pytest
import torch

from inpaint.checkpoint import Checkpoint
from inpaint.latent import LatentPrior
from inpaint.masks import make_mask
from inpaint.models import Discriminator, Generator, ModelConfig
from inpaint.search import (
    SearchSettings,
    context_weights,
    hole_neighbourhood,
    parse_neighbourhood,
    resolve_settings,
    scattered_holes,
    search,
    weights_for,
)


@pytest.fixture(scope="module")
def tiny_checkpoint() -> Checkpoint:
    torch.manual_seed(0)
    config = ModelConfig(image_size=32, g_width=8, d_width=8, latent_dim=12)
    generator, discriminator = Generator(config), Discriminator(config)
    generator.train()
    with torch.no_grad():  # give BatchNorm real statistics, so eval mode is not an identity
        generator(torch.rand(64, 12) * 2 - 1)
    return Checkpoint(
        path=None,
        config=config,
        prior=LatentPrior("uniform"),
        generator=generator.eval(),
        discriminator=discriminator.eval(),
    )


def test_context_weights_by_hand():
    known = torch.ones(1, 1, 5, 5)
    known[0, 0, 2, 2] = 0  # one missing pixel in the middle
    w = context_weights(known, size=3)[0, 0]
    assert w[2, 2] == 0  # the hole itself has no weight
    assert torch.allclose(w[1, 1], torch.tensor(1 / 9))  # 1 of its 9 neighbours is missing
    assert w[0, 0] == 0  # too far from the hole
    # At the border the neighbourhood is the part inside the image: (0, 1) sees 6 pixels, none missing;
    # with the hole moved to (0, 0), pixel (0, 1) sees 1 missing of its 6.
    corner = torch.ones(1, 1, 5, 5)
    corner[0, 0, 0, 0] = 0
    assert torch.allclose(context_weights(corner, size=3)[0, 0, 0, 1], torch.tensor(1 / 6))
    assert torch.allclose(context_weights(corner, size=3)[0, 0, 1, 1], torch.tensor(1 / 9))


def test_the_paper_weighting_in_7x7():
    known = torch.from_numpy(~make_mask("centre", 32, 32)).float()[None, None]
    w = context_weights(known)[0, 0]
    # The hole is rows/columns 8–23. (7, 7) sees rows/columns 4–10: 3×3 of its 49 are missing.
    assert w[8:24, 8:24].sum() == 0
    assert torch.allclose(w[7, 7], torch.tensor(9 / 49))
    assert torch.allclose(w[7, 15], torch.tensor(21 / 49))  # above the hole's edge: 3 rows × 7 missing
    assert torch.allclose(w[5, 15], torch.tensor(7 / 49))  # 3 rows up: one row of 7 missing
    assert w[4, 15] == 0 and w[3, 3] == 0


def test_the_window_grows_with_the_hole_and_never_drops_below_7x7():
    def known(kind: str, size: int = 64) -> torch.Tensor:
        return torch.from_numpy(~make_mask(kind, size, size)).float()[None]

    dot = torch.ones(1, 64, 64)
    dot[0, 30, 30] = 0
    assert hole_neighbourhood(dot) == 7  # a one-pixel hole keeps the paper's window
    assert hole_neighbourhood(known("centre")) == 33  # the 32×32 hole's middle is 16 pixels from context
    assert hole_neighbourhood(known("half")) == 65  # the far edge of a half is 32 pixels from the cut
    assert hole_neighbourhood(known("centre", 32)) == 17  # the same mask at half the size: half the window
    assert hole_neighbourhood(torch.ones(1, 64, 64)) == 7 and hole_neighbourhood(torch.zeros(1, 64, 64)) == 7
    # In a batch every mask gets its own window; a fixed size gives the paper's W for all of them.
    batch = torch.stack([known("centre"), known("half"), dot])
    auto = weights_for(batch)
    for mask, w in zip(batch, auto):
        assert torch.equal(w, context_weights(mask[None], hole_neighbourhood(mask))[0])
    assert torch.equal(weights_for(batch, 7), context_weights(batch, 7))
    # The wider window reaches the known pixels 10 columns from the cut, where 7×7 gives them nothing.
    assert auto[1, 0, 32, 42] > 0 and context_weights(batch[1:2], 7)[0, 0, 32, 42] == 0


def test_window_settings_are_auto_or_odd():
    assert parse_neighbourhood("auto") == "auto" and parse_neighbourhood("7") == 7
    for bad in ("8", "0", "-7", "wide"):
        with pytest.raises(ValueError, match="odd"):
            parse_neighbourhood(bad)


def _faces(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(n, 3, 32, 32, generator=generator) * 2 - 1
    known = torch.stack(
        [
            torch.from_numpy(~make_mask(k, 32, 32, seed=i)).float()[None]
            for i, k in enumerate(["centre", "pattern", "random", "half"][:n])
        ]
    )
    return images, known


SETTINGS = SearchSettings(iterations=30, restarts=3, lr=0.05, top_k=2, seed=1)


def test_results_do_not_depend_on_batch_mates(tiny_checkpoint):
    images, known = _faces(4)
    together = search(tiny_checkpoint, images, known, SETTINGS)
    alone = search(tiny_checkpoint, images[2:3], known[2:3], SETTINGS)
    assert torch.allclose(together.z[2], alone.z[0], atol=1e-4)
    assert torch.allclose(together.context_loss[2], alone.context_loss[0], rtol=1e-4)


def test_same_seed_same_result_other_seed_other_result(tiny_checkpoint):
    images, known = _faces(2)
    a = search(tiny_checkpoint, images, known, SETTINGS)
    b = search(tiny_checkpoint, images, known, SETTINGS)
    c = search(tiny_checkpoint, images, known, SearchSettings(**{**SETTINGS.__dict__, "seed": 2}))
    assert torch.equal(a.z, b.z) and not torch.equal(a.z, c.z)


@pytest.mark.parametrize("constraint", ["clip", "tanh"])
def test_z_stays_in_the_prior_support(tiny_checkpoint, constraint):
    images, known = _faces(2)
    result = search(
        tiny_checkpoint, images, known, SearchSettings(iterations=40, restarts=2, lr=0.5, constraint=constraint)
    )
    assert result.z.abs().max() <= 1
    assert result.candidate_z.abs().max() <= 1
    if constraint == "clip":
        assert (result.z.abs() == 1).any()  # a large step hits the box and is clipped back, not escaping


def test_candidates_are_ranked_by_context_loss_and_the_search_reduces_it(tiny_checkpoint):
    images, known = _faces(4)
    start = search(tiny_checkpoint, images, known, SearchSettings(iterations=0, restarts=4, top_k=4, seed=1))
    end = search(tiny_checkpoint, images, known, SearchSettings(iterations=60, restarts=4, top_k=4, lr=0.05, seed=1))
    assert end.candidates.shape == (4, 4, 3, 32, 32)
    losses = end.candidate_context_loss
    assert torch.all(losses[:, 1:] >= losses[:, :-1])
    assert torch.equal(losses[:, 0], end.context_loss)
    assert torch.all(end.context_loss < start.context_loss)
    assert torch.all(end.perceptual_loss <= 0)  # λ·log(1 − D) is never positive


def test_callback_reports_progress_and_can_stop(tiny_checkpoint):
    images, known = _faces(2)
    seen = []

    def callback(progress):
        seen.append(progress.iteration)
        assert progress.current.shape == (2, 3, 32, 32) and progress.context_loss.shape == (2,)
        return progress.iteration >= 20

    result = search(
        tiny_checkpoint,
        images,
        known,
        SearchSettings(iterations=100, restarts=2, report_every=10, patience=0),
        callback,
    )
    assert seen == [0, 10, 20]  # the starting points first
    assert result.iterations.tolist() == [21, 21]  # the step after the last report was taken and scored


def test_generator_and_discriminator_stay_frozen(tiny_checkpoint):
    before = [p.clone() for p in tiny_checkpoint.generator.parameters()] + [
        b.clone() for b in tiny_checkpoint.generator.buffers()
    ]
    images, known = _faces(2)
    search(tiny_checkpoint, images, known, SETTINGS)
    after = list(tiny_checkpoint.generator.parameters()) + list(tiny_checkpoint.generator.buffers())
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert not tiny_checkpoint.generator.training and not tiny_checkpoint.discriminator.training


def test_cpu_threads_leave_busy_cores_alone_and_follow_the_users_choice(monkeypatch):
    import inpaint.device as device

    monkeypatch.setattr(device, "available_cores", lambda: 8)
    monkeypatch.setattr(device, "busy_cores", lambda: 0.0)
    assert device.cpu_threads() == 8 and device.cpu_threads(concurrent=2) == 4
    monkeypatch.setattr(device, "busy_cores", lambda: 6.6)  # other processes keep 7 cores busy
    assert device.cpu_threads() == 1 and device.cpu_threads(concurrent=2) == 1
    monkeypatch.setattr(device, "busy_cores", lambda: 20.0)  # more work than cores: still one thread
    assert device.cpu_threads() == 1
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("INPAINT_THREADS", "3")
        assert device.limit_cpu_threads() == 3
        monkeypatch.delenv("INPAINT_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        assert device.limit_cpu_threads() == 2  # the user's OpenMP setting is left as it is
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(device, "busy_cores", lambda: 0.0)
        assert device.limit_cpu_threads() == 8
    finally:
        torch.set_num_threads(before)


def test_scattered_holes_search_longer_than_compact_ones_in_the_same_batch(tiny_checkpoint):
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    known = torch.stack([torch.from_numpy(~make_mask(kind, 32, 32)).float()[None] for kind in ("centre", "random")])
    assert scattered_holes(known).tolist() == [False, True]
    settings = SearchSettings(iterations=10, scattered_iterations=40, restarts=1, patience=0)
    result = search(tiny_checkpoint, images, known, settings)
    assert result.iterations.tolist() == [10, 40]
    # The scattered image ran exactly as it would alone: its budget, not its batch-mate's, decides.
    alone = search(tiny_checkpoint, images[1:], known[1:], settings)
    assert torch.allclose(result.z[1], alone.z[0], atol=1e-5)


def test_a_chosen_iteration_count_holds_for_every_hole():
    from inpaint.search import ENCODER_SCATTERED, ENCODER_START

    checkpoint = type("WithEncoder", (), {"encoder": object()})()
    chosen = resolve_settings(checkpoint, SearchSettings(iterations=7))
    assert (chosen.iterations, chosen.scattered_iterations) == (7, 7)
    default = resolve_settings(checkpoint, SearchSettings())
    assert (default.iterations, default.scattered_iterations) == (ENCODER_START[0], ENCODER_SCATTERED)


# --- Batching: shrinking on the CPU, fixed-shape (CUDA graphs) on a GPU ----------------------------


@pytest.mark.parametrize("patience", [0, 3])
def test_fixed_batching_gives_the_results_of_shrinking_batches(tiny_checkpoint, patience):
    images, known = _faces(4)  # centre, pattern, random, half: compact and scattered holes, two budgets
    base = dict(iterations=12, scattered_iterations=30, restarts=2, top_k=2, lr=0.05, seed=3, patience=patience)
    shrink = search(tiny_checkpoint, images, known, SearchSettings(**base, batching="shrink"))
    fixed = search(tiny_checkpoint, images, known, SearchSettings(**base, batching="fixed"))
    assert torch.equal(shrink.iterations, fixed.iterations)
    if patience:
        assert shrink.iterations.min() < 12  # someone stopped early, so masking was exercised
    else:
        assert shrink.iterations.tolist() == [12, 30, 30, 12]
    assert torch.allclose(shrink.z, fixed.z, atol=1e-5)
    assert torch.allclose(shrink.candidate_context_loss, fixed.candidate_context_loss, rtol=1e-4)
    assert torch.allclose(shrink.images, fixed.images, atol=1e-4)


def test_unknown_batching_is_refused(tiny_checkpoint):
    from inpaint.errors import UserError

    images, known = _faces(1)
    with pytest.raises(UserError, match="batching"):
        search(tiny_checkpoint, images, known, SearchSettings(iterations=2, batching="elastic"))


class _HostReads(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the operators that make a GPU wait for the host to read a value back: a scalar read
    (.item(), bool(), int()), nonzero, and boolean-mask indexing (which needs nonzero's count)."""

    SYNCING = {"_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "item"}

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        bool_index = name.startswith("index") and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool
            for arg in args
            for a in (arg if isinstance(arg, (list, tuple)) else [arg])
        )
        if name in self.SYNCING or bool_index:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def test_a_fixed_batching_step_reads_nothing_back_to_the_host(tiny_checkpoint):
    """What a CUDA graph needs of the step (checked here on the CPU): no host reads inside it."""
    from inpaint.search import _Search, resolve_settings

    images, known = _faces(3)
    settings = resolve_settings(tiny_checkpoint, SearchSettings(iterations=10, restarts=2, patience=4))
    n, k = 3, 2
    run = _Search(
        tiny_checkpoint,
        settings,
        images.repeat_interleave(k, 0),
        weights_for(known).repeat_interleave(k, 0),
        torch.rand(n * k, 12) * 2 - 1,
        torch.tensor([10, 10, 6]),
        "fixed",
        "fp32",
    )
    for _ in range(2):
        run.iterate()  # Adam's state exists after the first step
    with _HostReads() as reads:
        for _ in range(3):
            run.iterate()
    assert reads.seen == []
    assert int(run.step) == 5
    # The recorder does see a host read where there is one (the test can fail).
    run.batching = "shrink"
    run.active.copy_(torch.tensor([False, True, True]))
    with _HostReads() as reads:
        run.iterate()
    assert "nonzero" in reads.seen or "_local_scalar_dense" in reads.seen


def test_context_weights_match_a_convolution_of_the_mask():
    """The box sums (OpenCV) agree with the definition written as convolutions."""
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    known = (torch.rand(3, 1, 24, 20, generator=generator) > 0.6).float()
    for size in (3, 7, 31):
        kernel = torch.ones(1, 1, size, size)
        missing = F.conv2d(1 - known, kernel, padding=size // 2)
        present = F.conv2d(torch.ones_like(known), kernel, padding=size // 2)
        assert torch.allclose(context_weights(known, size), known * missing / present, atol=1e-6)


def test_batch_size_follows_free_memory_within_bounds(tiny_checkpoint):
    from inpaint.search import CPU_BATCH, MAX_AUTO_BATCH, auto_batch_size, batch_size_for

    mb = 2**20
    assert batch_size_for(100 * mb, 4 * mb) == 12  # half of 100 MB at 4 MB an image
    assert batch_size_for(80_000 * mb, 4 * mb) == MAX_AUTO_BATCH
    assert batch_size_for(1 * mb, 4 * mb) == 1  # never none: the search then runs one at a time
    assert batch_size_for(100 * mb, 4 * mb, cap=8) == 8
    assert auto_batch_size(tiny_checkpoint, SearchSettings()) == CPU_BATCH  # on the CPU
