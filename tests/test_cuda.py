"""CUDA: the GPU-specific checks (`pytest -m cuda`; skipped where torch sees no GPU), and the
CUDA-facing choices that are checked without one (process-group backend, deterministic kernels,
the GPU check's script and the benchmarks' device names)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image

from inpaint.checkpoint import checkpoint_or_default, load_checkpoint
from inpaint.device import device_name, search_precision
from inpaint.errors import UserError
from inpaint.masks import make_mask
from inpaint.search import SearchSettings, search
from inpaint_training.distributed import World, choose_backend, init_world, rank_device
from inpaint_training.dry_run import write_synthetic_images
from inpaint_training.loop import cuda_determinism, train
from inpaint_training.options import TrainOptions

ROOT = Path(__file__).resolve().parent.parent
FACES = sorted((ROOT / "examples" / "faces").glob("*.jpg"))
NO_GPU = "needs a CUDA GPU (this torch sees none)"


def gpu(test):
    """A GPU-only check: marked `cuda` (so `pytest -m cuda` selects it) and skipped without CUDA."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)(test))


def _state() -> tuple[bool, bool, bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )


# --- Without a GPU --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "device_type, processes, gpus, backend",
    [
        ("cpu", 2, 0, "gloo"),
        ("cpu", 2, 8, "gloo"),  # --device cpu on a GPU machine
        ("cuda", 2, 1, "gloo"),  # two ranks on one GPU: NCCL refuses a device shared by two ranks
        ("cuda", 3, 2, "gloo"),
        ("cuda", 2, 2, "nccl"),
        ("cuda", 1, 4, "nccl"),
    ],
)
def test_backend_is_nccl_only_when_every_process_has_its_own_gpu(device_type, processes, gpus, backend):
    assert choose_backend(device_type, processes, gpus) == backend


def test_ranks_take_the_gpus_in_turn():
    assert [str(rank_device(rank, 2)) for rank in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert str(rank_device(1, 1)) == "cuda:0"


@pytest.fixture
def fake_process_group(monkeypatch):
    """torchrun's environment for local rank 1 of 2, with the process group and the GPU calls
    recorded instead of made; returns the record and a setter for the number of GPUs."""
    calls: dict[str, object] = {}
    gpus = {"count": 1}
    for name, value in {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "1", "RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.__setitem__("backend", backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus["count"])
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.__setitem__("device", str(device)))
    return calls, gpus


def test_two_processes_on_one_gpu_join_with_gloo_and_share_it(fake_process_group):
    calls, _ = fake_process_group  # one GPU
    world = init_world(torch.device("cuda", 0))  # what select_device gives local rank 1 on one GPU
    assert world == World(rank=1, local_rank=1, size=2, backend="gloo")
    assert calls == {"backend": "gloo", "device": "cuda:0"}


def test_two_processes_on_two_gpus_join_with_nccl_each_on_its_own(fake_process_group):
    calls, gpus = fake_process_group
    gpus["count"] = 2
    assert init_world(torch.device("cuda", 1)).backend == "nccl"
    assert calls == {"backend": "nccl", "device": "cuda:1"}
    calls.clear()
    with pytest.raises(UserError, match="each process takes its own GPU"):  # --device cuda:0 for every rank
        init_world(torch.device("cuda", 0))
    assert calls == {}


def test_cpu_processes_join_with_gloo_and_touch_no_gpu(fake_process_group):
    calls, gpus = fake_process_group
    gpus["count"] = 8
    assert init_world("cpu").backend == "gloo"
    assert calls == {"backend": "gloo"}


def test_deterministic_kernels_only_while_training_on_cuda(monkeypatch):
    # Set at import of training.loop, before any CUDA work: torch reads it once (a user's value is kept).
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") in (":4096:8", ":16:8")
    before = _state()
    with cuda_determinism(torch.device("cpu")):
        assert _state() == before
    with cuda_determinism(torch.device("cuda", 0)):
        assert _state() == (True, True, True, False)
    assert _state() == before
    with pytest.raises(RuntimeError), cuda_determinism(torch.device("cuda", 0)):
        raise RuntimeError("a failed run")
    assert _state() == before  # restored after a failure too
    monkeypatch.setenv("INPAINT_CUDA_DETERMINISTIC", "0")
    with cuda_determinism(torch.device("cuda", 0)):
        assert _state() == before


def test_benchmarks_name_the_device():
    spec = importlib.util.spec_from_file_location("search_speed", ROOT / "benchmarks" / "search_speed.py")
    search_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(search_speed)
    name = device_name(torch.device("cpu"))
    assert isinstance(name, str) and name.strip()
    search_speed.synchronize(torch.device("cpu"))  # nothing to wait for


def test_gpu_check_script_parses_and_make_runs_it():
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(["make", "-n", "bench-gpu"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0 and "benchmarks/gpu_check.sh" in dry.stdout, dry.stdout + dry.stderr


# --- On a GPU -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_on_gpu():
    return load_checkpoint(checkpoint_or_default(None), device="cuda")


def _faces(count: int, size: int = 64) -> list[tuple[Image.Image, np.ndarray]]:
    hole = make_mask("centre", size, size)
    return [(Image.open(FACES[i % len(FACES)]).convert("RGB").resize((size, size)), hole) for i in range(count)]


def _hole_pixels(results, items) -> np.ndarray:
    """(N, pixels, 3) of each fill's hole, in [0, 1]."""
    return np.stack([np.asarray(r.image, dtype=np.float32)[hole] / 255 for r, (_, hole) in zip(results, items)])


@gpu
def test_fill_on_the_gpu_matches_the_cpu(default_on_gpu):
    from inpaint.engine import FillRequest, fill_images

    items = _faces(3)
    request = FillRequest(SearchSettings(precision="fp32"), blend=False)  # the encoder's start, 25 iterations
    on_cpu = fill_images(load_checkpoint(checkpoint_or_default(None)), items, request)
    on_gpu = fill_images(default_on_gpu, items, request)
    cpu, gpu_ = _hole_pixels(on_cpu, items), _hole_pixels(on_gpu, items)
    # Different kernels (cuDNN convolutions round their inputs to TF32 by default) send the 25 steps
    # of z slightly different ways. CPU fp32 against CPU bf16, a larger rounding change, moves the
    # hole's channel means and spreads by under 0.004 and its pixels by 0.004 on average (AMD EPYC,
    # three example faces): 0.02 (5 grey levels) and 0.03 leave room and still catch a wrong fill.
    assert np.abs(cpu.mean(1) - gpu_.mean(1)).max() < 0.02
    assert np.abs(cpu.std(1) - gpu_.std(1)).max() < 0.02
    assert np.abs(cpu - gpu_).mean() < 0.03
    for a, b in zip(on_cpu, on_gpu):
        assert b.context_loss == pytest.approx(a.context_loss, rel=0.05)
    assert {p.device.type for p in default_on_gpu.generator.parameters()} == {"cuda"}


@gpu
def test_search_keeps_the_networks_on_the_gpu_and_returns_cpu_tensors(tiny_checkpoint_path):
    checkpoint = load_checkpoint(tiny_checkpoint_path, device="cuda")
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    known = torch.from_numpy(~make_mask("centre", 32, 32)).float()[None, None].repeat(3, 1, 1, 1)
    reports = []
    result = search(
        checkpoint,
        images,
        known,
        SearchSettings(iterations=6, restarts=2, report_every=2, patience=0),
        callback=reports.append,
    )
    for network in (checkpoint.generator, checkpoint.discriminator):
        assert {p.device.type for p in network.parameters()} == {"cuda"}
        assert not network.training
    assert len(reports) == 4  # iterations 0, 2, 4, 6
    for name, value in vars(result).items():
        assert value.device.type == "cpu", name
    for report in reports:
        for name in ("context_loss", "current", "restart_context_loss", "restart_images"):
            assert getattr(report, name).device.type == "cpu", name
    assert result.images.shape == (3, 3, 32, 32) and result.z.abs().max() <= 1
    assert torch.isfinite(result.context_loss).all()


def _model_faces(checkpoint, count: int, kind: str = "centre") -> tuple[torch.Tensor, torch.Tensor]:
    """(images, known) of example faces in the checkpoint's model space, with one hole kind."""
    size = checkpoint.config.image_size
    images = torch.stack(
        [
            checkpoint.from_pixels(torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255)
            for image, _ in _faces(count, size)
        ]
    )
    known = torch.from_numpy(~make_mask(kind, size, size)).float()[None, None].repeat(count, 1, 1, 1)
    return images, known


@gpu
@pytest.mark.parametrize("kind", ["centre", "random"])
def test_the_search_replays_a_cuda_graph_with_the_eager_results(default_on_gpu, monkeypatch, kind):
    """A fixed-shape search is captured once and replayed; it must give what the same steps give
    eagerly, and what the shrinking batches of the CPU's way give, and the capture must not fail
    (a failed capture warns and runs eagerly: turned into an error here)."""
    images, known = _model_faces(default_on_gpu, 6, kind)
    settings = SearchSettings(precision="fp32", restarts=2, top_k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graphed = search(default_on_gpu, images, known, replace(settings, batching="fixed"))
    monkeypatch.setenv("INPAINT_CUDA_GRAPHS", "0")
    eager = search(default_on_gpu, images, known, replace(settings, batching="fixed"))
    shrink = search(default_on_gpu, images, known, replace(settings, batching="shrink"))
    assert torch.equal(graphed.iterations, eager.iterations) and torch.equal(graphed.iterations, shrink.iterations)
    # cuDNN's convolutions are not bitwise reproducible and the steps amplify their last bits: the
    # latents agree to a small part of the way they moved (a graph that skipped or mixed up steps
    # would be off by about the whole way).
    start = search(default_on_gpu, images, known, replace(settings, batching="fixed", iterations=0))
    moved = (eager.z - start.z).abs().mean()
    for other in (eager, shrink):
        assert (graphed.z - other.z).abs().mean() < 0.2 * moved
        assert torch.allclose(graphed.context_loss, other.context_loss, rtol=0.01)


@gpu
def test_adaptation_on_the_gpu_replays_a_graph_matches_eager_and_the_cpu(default_on_gpu, monkeypatch):
    """The per-photo generators are tuned on the GPU as a CUDA graph (grouped convolutions, fused
    Adam), with what the same steps give eagerly and on the CPU; the shipped weights never move."""
    from inpaint.adapt import AdaptSettings, adapt

    images, known = _model_faces(default_on_gpu, 4)
    z = torch.rand(4, default_on_gpu.config.latent_dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
    settings = AdaptSettings(steps=30, tuned="all", lr=2e-4)
    shipped = {n: p.detach().clone() for n, p in default_on_gpu.generator.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture warns: an error here
        graphed = adapt(default_on_gpu, images, known, z, settings)
    monkeypatch.setenv("INPAINT_CUDA_GRAPHS", "0")
    eager = adapt(default_on_gpu, images, known, z, settings)
    on_cpu = adapt(load_checkpoint(checkpoint_or_default(None)), images, known, z, settings)
    assert (graphed.images - eager.images).abs().mean() < 0.005  # cuDNN is not bitwise reproducible
    # TF32 convolutions on the GPU against fp32 on the CPU: the same fit to within a few grey levels.
    assert (graphed.images - on_cpu.images).abs().mean() < 0.02
    assert torch.allclose(graphed.loss, on_cpu.loss, rtol=0.05)
    for name, value in default_on_gpu.generator.named_parameters():
        assert torch.equal(value, shipped[name]), name


@gpu
def test_two_threads_searching_on_one_gpu_get_their_own_results(default_on_gpu):
    """The app serves two requests at once: their graph captures must not meet."""
    from concurrent.futures import ThreadPoolExecutor

    images, known = _model_faces(default_on_gpu, 4)
    settings = SearchSettings(precision="fp32", batching="fixed")
    alone = search(default_on_gpu, images, known, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture warns
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(lambda _: search(default_on_gpu, images, known, settings), range(4)))
    for result in together:  # to cuDNN's reproducibility (mixed-up captures are off by tenths)
        assert (result.z - alone.z).abs().max() < 0.05


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_a_graphed_search_on_the_second_gpu_moves_its_latents():
    """Graphs record on the current device's streams: a search on cuda:1 must still run its steps."""
    checkpoint = load_checkpoint(checkpoint_or_default(None), device="cuda:1")
    images, known = _model_faces(checkpoint, 2)
    settings = SearchSettings(precision="fp32", batching="fixed", iterations=20, patience=0, init="random", restarts=1)
    start = search(checkpoint, images, known, replace(settings, iterations=0))
    end = search(checkpoint, images, known, settings)
    assert torch.all(end.context_loss < start.context_loss)
    assert end.iterations.tolist() == [20, 20]


@gpu
def test_a_graphed_search_reports_progress_and_stops_when_asked(default_on_gpu):
    images, known = _model_faces(default_on_gpu, 2)
    seen = []

    def callback(progress):
        seen.append(progress.iteration)
        return progress.iteration >= 10

    settings = SearchSettings(iterations=40, restarts=2, report_every=5, patience=0, batching="fixed")
    result = search(default_on_gpu, images, known, settings, callback)
    assert seen == [0, 5, 10]
    assert result.iterations.tolist() == [11, 11]  # the step after the last report was taken and scored


@gpu
def test_batch_size_on_the_gpu_comes_from_its_free_memory(default_on_gpu):
    from inpaint.search import auto_batch_size, search_bytes_per_image

    per_image = search_bytes_per_image(default_on_gpu, SearchSettings(restarts=1))
    assert 100_000 < per_image < 500_000_000  # activations of G and D for one 64×64 image, plausibly
    size = auto_batch_size(default_on_gpu, SearchSettings())
    assert 64 <= size <= 1024  # a data-centre GPU holds far more than the CPU's 16
    images, known = _model_faces(default_on_gpu, size)
    result = search(default_on_gpu, images, known, SearchSettings(iterations=3))
    assert torch.isfinite(result.context_loss).all()


@gpu
def test_bf16_search_on_the_gpu_runs_and_matches_fp32(default_on_gpu):
    if not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16")
    assert search_precision(torch.device("cuda")) == "fp32"  # "auto" on a GPU; bf16 only when asked
    size = default_on_gpu.config.image_size
    images = torch.stack(
        [
            default_on_gpu.from_pixels(torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255)
            for image, _ in _faces(4)
        ]
    )
    known = torch.from_numpy(~make_mask("centre", size, size)).float()[None, None].repeat(4, 1, 1, 1)
    results = {
        precision: search(default_on_gpu, images, known, SearchSettings(precision=precision))
        for precision in ("fp32", "bf16")
    }
    assert torch.isfinite(results["bf16"].images).all() and torch.isfinite(results["bf16"].context_loss).all()
    # bf16 rounds G's output to 8 significant bits; on the CPU the two precisions' context losses
    # differ by under 0.5%. 5% catches a search that bf16 sends astray.
    assert results["bf16"].context_loss.mean() < 1.05 * results["fp32"].context_loss.mean()


@gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_projection_converges_on_the_gpu(default_on_gpu, precision):
    from inpaint.editor import latents_for_seeds, project
    from inpaint.grids import to_pil
    from inpaint.sampling import generate

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16")
    [picture] = to_pil(generate(default_on_gpu, latents_for_seeds(default_on_gpu, [11]) * 0.8))
    start = project(default_on_gpu, picture, SearchSettings(iterations=0, restarts=4, lam=0.0, precision=precision))
    found = project(
        default_on_gpu, picture, SearchSettings(iterations=80, restarts=4, lr=0.05, lam=0.0, precision=precision)
    )
    # As tests/test_editor.py on the CPU (there: 0.16 of the start in fp32, 0.17 in bf16).
    assert found.context_loss < 0.5 * start.context_loss, (precision, start.context_loss, found.context_loss)
    assert found.z.device.type == "cpu" and found.z.abs().max() <= 1


def _all_weights(run_dir: Path) -> list[torch.Tensor]:
    checkpoint = load_checkpoint(run_dir)
    return list(checkpoint.generator.state_dict().values()) + list(checkpoint.discriminator.state_dict().values())


@gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_on_the_gpu_resumes_exactly(tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16")
    data = write_synthetic_images(tmp_path / "data", count=32, size=40)

    def options(out: str, steps: int) -> TrainOptions:
        # Every augmentation and the EMA: the paths whose kernels could be nondeterministic on CUDA.
        return TrainOptions(
            data=str(data),
            out=str(tmp_path / out),
            image_size=32,
            g_width=8,
            d_width=8,
            batch_size=4,
            log_every=1,
            steps=steps,
            device="cuda",
            precision=precision,
            ema_decay=0.9,
            diffaug="color,translation,cutout",
        )

    before = _state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(options("whole", 8), show_progress=False, log=lambda *a: None)
        train(options("split", 3), show_progress=False, log=lambda *a: None)
        train(options("split", 8), resume=True, show_progress=False, log=lambda *a: None)
    nondeterministic = [str(w.message) for w in caught if "deterministic" in str(w.message)]
    assert not nondeterministic, nondeterministic  # an operation without a deterministic CUDA kernel
    assert _state() == before  # the process-wide switches are put back
    resolved = json.loads((tmp_path / "whole" / "training_options.json").read_text())["resolved"]
    assert resolved["device"].startswith("cuda")
    for a, b in zip(_all_weights(tmp_path / "whole"), _all_weights(tmp_path / "split"), strict=True):
        assert torch.equal(a, b)
