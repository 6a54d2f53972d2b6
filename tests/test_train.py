"""The trainer end to end: mixed-format data, outputs, resume, sampling, failures, torchrun."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from inpaint.checkpoint import list_snapshots, load_checkpoint
from inpaint.cli import main
from inpaint.errors import UserError
from inpaint_training import loop
from inpaint_training.dry_run import write_synthetic_images
from inpaint_training.loop import NonFiniteLoss, train
from inpaint_training.loss import LossTotals
from inpaint_training.options import TrainOptions
from inpaint_training.run_dir import read_stats
from inpaint_training.state import adam_for, load_optimizer_state

QUIET_RUN = dict(show_progress=False, log=lambda *a: None)
# The GAN phase alone: the encoder phase has its own tests (test_pipeline.py).
TINY = [
    "--image-size",
    "32",
    "--g-width",
    "8",
    "--d-width",
    "8",
    "--batch-size",
    "4",
    "--log-every",
    "1",
    "--no-encoder",
]


def tiny_options(data: Path, out: Path, **overrides) -> TrainOptions:
    values = dict(
        data=str(data), out=str(out), image_size=32, g_width=8, d_width=8, batch_size=4, log_every=1, encoder_steps=0
    )
    values.update(overrides)
    return TrainOptions(**values)


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory) -> Path:
    return write_synthetic_images(tmp_path_factory.mktemp("synthetic"), count=32, size=40)


def all_weights(path: Path) -> list[torch.Tensor]:
    checkpoint = load_checkpoint(path)
    return list(checkpoint.generator.state_dict().values()) + list(checkpoint.discriminator.state_dict().values())


def test_train_on_mixed_folder_writes_a_complete_run(mixed_image_folder, tmp_path, capsys):
    folder, good_count, bad_names = mixed_image_folder
    run_dir = tmp_path / "run"
    assert (
        main(["train", "--data", str(folder), "--out", str(run_dir), "--steps", "3", "--sample-every", "2", *TINY]) == 0
    )
    output = capsys.readouterr()
    text = output.out + output.err
    for name in bad_names:
        assert name in text, f"no warning names {name}"
    assert f"skipped {len(bad_names)} unreadable" in text

    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["resolved"]["images"] == good_count
    assert options["steps"] == 3 and options["image_size"] == 32
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats if "loss_d" in r] == [1, 2, 3]
    assert all(r["loss_d"] > 0 and r["images_per_second"] > 0 for r in stats if "loss_d" in r)
    assert (run_dir / "samples" / "step-000000002.png").is_file()
    assert (run_dir / "samples" / "latest.png").is_file()
    assert (run_dir / "losses.png").is_file()
    [(step, weights)] = list_snapshots(run_dir)
    assert step == 3
    checkpoint = load_checkpoint(run_dir)
    assert checkpoint.training["steps"] == 3 and checkpoint.training["images"] == good_count
    assert checkpoint.config.image_size == 32


def test_resume_continues_exactly_where_it_stopped(synthetic_folder, tmp_path):
    whole = train(
        tiny_options(synthetic_folder, tmp_path / "whole", steps=10), show_progress=False, log=lambda *a: None
    )
    first = train(tiny_options(synthetic_folder, tmp_path / "split", steps=4), show_progress=False, log=lambda *a: None)
    assert (whole.step, first.step) == (10, 4)
    assert main(["train", "--resume", str(tmp_path / "split"), "--steps", "10"]) == 0
    assert load_checkpoint(tmp_path / "split").training["steps"] == 10
    # Same data order, noise, optimiser state and BatchNorm statistics: bit-identical weights.
    for a, b in zip(all_weights(tmp_path / "whole"), all_weights(tmp_path / "split")):
        assert torch.equal(a, b)
    records = [json.loads(line) for line in (tmp_path / "split" / "stats.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == sorted(steps)
    at_4 = [r.get("event", "losses") for r in records if r["step"] == 4]
    assert at_4 == ["losses", "diversity", "end"]  # the first part's last log line, its last grid, its end


def test_precision_auto_is_what_the_search_runs_in_and_bf16_on_the_cpu_is_channels_last(synthetic_folder, tmp_path):
    from inpaint.device import search_precision
    from inpaint_training.state import memory_format_of

    cpu = torch.device("cpu")
    options = tiny_options(synthetic_folder, tmp_path / "auto", steps=2)
    assert options.precision == "auto"
    train(options, **QUIET_RUN)
    resolved = json.loads((tmp_path / "auto" / "training_options.json").read_text())["resolved"]
    expected = search_precision(cpu, "auto")  # bf16 where this CPU has native bf16, else fp32
    assert resolved["precision"] == expected
    assert resolved["channels_last"] == (expected == "bf16")
    assert load_checkpoint(tmp_path / "auto").training["precision"] == expected
    assert memory_format_of(options, "bf16", cpu) == torch.channels_last
    assert memory_format_of(options, "fp32", cpu) == torch.contiguous_format
    assert memory_format_of(dataclasses.replace(options, channels_last=True), "fp32", cpu) == torch.channels_last
    assert memory_format_of(options, "bf16", torch.device("cuda")) == torch.contiguous_format


def test_resume_refuses_to_change_the_architecture(synthetic_folder, tmp_path, capsys):
    train(tiny_options(synthetic_folder, tmp_path / "run", steps=1), show_progress=False, log=lambda *a: None)
    assert main(["train", "--resume", str(tmp_path / "run"), "--image-size", "64"]) == 2
    assert "cannot change when resuming" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(synthetic_folder, tmp_path):
    train(tiny_options(synthetic_folder, tmp_path / "run", steps=1), show_progress=False, log=lambda *a: None)
    before = (tmp_path / "run" / "checkpoints" / "step-000000001.safetensors").read_bytes()
    with pytest.raises(UserError, match="already holds a training run"):
        train(tiny_options(synthetic_folder, tmp_path / "run", steps=2), show_progress=False, log=lambda *a: None)
    assert (tmp_path / "run" / "checkpoints" / "step-000000001.safetensors").read_bytes() == before


def test_sample_command_from_a_run(synthetic_folder, tmp_path):
    train(tiny_options(synthetic_folder, tmp_path / "run", steps=2), show_progress=False, log=lambda *a: None)
    grid, singles = tmp_path / "grid.png", tmp_path / "singles"
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(tmp_path / "run"),
                "--n",
                "6",
                "--seed",
                "3",
                "--out",
                str(grid),
                "--out-dir",
                str(singles),
            ]
        )
        == 0
    )
    from PIL import Image

    assert Image.open(grid).size == (3 * 34 + 2, 2 * 34 + 2)  # 3 columns × 2 rows of 32 px with 2 px padding
    files = sorted(singles.glob("*.png"))
    assert len(files) == 6 and Image.open(files[0]).size == (32, 32)
    again = tmp_path / "again.png"
    main(["sample", "--checkpoint", str(tmp_path / "run"), "--n", "6", "--seed", "3", "--out", str(again)])
    assert again.read_bytes() == grid.read_bytes()


def test_non_finite_loss_stops_and_keeps_the_last_good_snapshot(synthetic_folder, tmp_path, monkeypatch):
    from inpaint.models import Discriminator

    calls = {"n": 0}
    original = Discriminator.forward

    def poisoned(self, image):
        calls["n"] += 1
        out = original(self, image)
        return out * float("nan") if calls["n"] > 3 * 4 else out  # 3 D calls per step: NaN from step 5

    monkeypatch.setattr(Discriminator, "forward", poisoned)
    with pytest.raises(NonFiniteLoss, match="NaN or infinite by step 5"):
        train(
            tiny_options(synthetic_folder, tmp_path / "run", steps=20, checkpoint_every=2),
            show_progress=False,
            log=lambda *a: None,
        )
    assert [step for step, _ in list_snapshots(tmp_path / "run")] == [2, 4]
    assert all(torch.isfinite(t.float()).all() for t in all_weights(tmp_path / "run"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "contains no image files"),
    ],
)
def test_bad_data_folder_is_a_one_line_error(tmp_path, capsys, make, message):
    folder = make(tmp_path)
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and str(folder) in err and "\n" not in err


def test_dry_run_needs_no_data(capsys):
    assert main(["train", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "dry run finished: 3 GAN steps, then the encoder" in printed and "model.safetensors" in printed


def _inpaint_command() -> list[str]:
    return [sys.executable, "-m", "inpaint"]


@pytest.mark.slow
def test_ctrl_c_saves_a_snapshot_that_resumes(synthetic_folder, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            *_inpaint_command(),
            "train",
            "--data",
            str(synthetic_folder),
            "--out",
            str(run_dir),
            "--steps",
            "100000",
            "--checkpoint-every",
            "100000",
            *TINY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stats = run_dir / "stats.jsonl"
    deadline = time.time() + 120
    while not (stats.exists() and stats.read_text().count("\n") >= 3):
        assert process.poll() is None and time.time() < deadline, process.communicate()[0]
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "--resume" in output
    [(step, _)] = list_snapshots(run_dir)
    assert step >= 3
    resumed = train(
        tiny_options(synthetic_folder, run_dir, steps=step + 2), resume=True, show_progress=False, log=lambda *a: None
    )
    assert resumed.step == step + 2


@pytest.mark.slow
def test_torchrun_two_processes_train_the_same_weights(synthetic_folder, tmp_path):
    # --device auto: on the CPU, or on the GPUs; where there are fewer GPUs than the two processes,
    # they share one through gloo, as NCCL refuses two ranks on one device (training.distributed).
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "inpaint",
            "train",
            "--data",
            str(synthetic_folder),
            "--out",
            str(run_dir),
            "--steps",
            "4",
            "--sample-every",
            "2",
            *TINY,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    end = records[-1]
    assert end["world_size"] == 2 and len(end["replica_checksums"]) == 2
    assert end["replica_checksums"][0] == end["replica_checksums"][1]
    # Only rank 0 wrote: one stats line per step, one set of files, one final message.
    assert [r["step"] for r in records if "loss_d" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in records if r.get("event") == "diversity"] == [1, 2, 4]  # one per grid
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "latest.png",
        "step-000000002.png",
        "step-000000004.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (result.stdout + result.stderr).count("stopped by steps") == 1
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["resolved"]["world_size"] == 2
    # 32 images, 2 ranks × batch 4: 4 steps per epoch, so 4 steps are exactly one epoch.
    assert load_checkpoint(run_dir).training["epochs"] == 1.0


def test_a_single_process_decides_to_stop_on_the_host(synthetic_folder, tmp_path, monkeypatch):
    # The stop, time and report flags of a world of one are host booleans: nothing is reduced on the
    # device each step (on CUDA that would wait for the GPU); the loss sums are read once per stats line.
    reduced = []
    original = loop.all_reduce_

    def spy(tensor, world, op="sum"):
        reduced.append(tensor.numel())
        return original(tensor, world, op)

    monkeypatch.setattr(loop, "all_reduce_", spy)
    run_dir = tmp_path / "run"
    train(tiny_options(synthetic_folder, run_dir, steps=7, log_every=3), show_progress=False, log=lambda *a: None)
    logged = [r["step"] for r in read_stats(run_dir / "stats.jsonl") if "loss_d" in r]
    assert logged == [1, 3, 6, 7]
    assert reduced == [len(fields(LossTotals))] * len(logged)


def _adam_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    for step in range(steps):
        optimizer.zero_grad()
        model(torch.linspace(-1, 1, 8).reshape(2, 4) * (step + 1)).square().sum().backward()
        optimizer.step()


def _linear() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def test_adam_is_fused_on_cuda_only_and_states_load_across_devices():
    cpu = torch.device("cpu")
    model = _linear()
    optimizer = adam_for(model.parameters(), 1e-2, (0.5, 0.999), cpu)
    assert optimizer.param_groups[0]["fused"] is None  # torch's default CPU Adam, as before
    _adam_steps(model, optimizer, 3)
    saved = copy.deepcopy(optimizer.state_dict())  # a state dict shares the optimiser's tensors
    # What a CUDA run's state file holds (once loaded to the CPU): the same, with fused=True.
    from_cuda = copy.deepcopy(saved)
    for group in from_cuda["param_groups"]:
        group["fused"] = True

    plain, resumed = _linear(), _linear()
    plain.load_state_dict(model.state_dict())
    resumed.load_state_dict(model.state_dict())
    plain_opt = adam_for(plain.parameters(), 1e-2, (0.5, 0.999), cpu)
    resumed_opt = adam_for(resumed.parameters(), 1e-2, (0.5, 0.999), cpu)
    load_optimizer_state(plain_opt, copy.deepcopy(saved))
    load_optimizer_state(resumed_opt, from_cuda)
    assert resumed_opt.param_groups[0]["fused"] is None  # the CPU keeps its own kernel
    assert resumed_opt.state_dict()["state"][0]["step"].item() == 3
    _adam_steps(plain, plain_opt, 2)
    _adam_steps(resumed, resumed_opt, 2)
    for a, b in zip(plain.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)

    # The other way: a fused optimiser (torch also fuses on the CPU, standing in for CUDA here) loading a
    # CPU state stays fused, with its step counts where the fused kernel reads them.
    fused_model = _linear()
    fused_model.load_state_dict(model.state_dict())
    fused = torch.optim.Adam(fused_model.parameters(), lr=1e-2, betas=(0.5, 0.999), fused=True)
    load_optimizer_state(fused, copy.deepcopy(saved))
    assert fused.param_groups[0]["fused"] is True
    assert all(state["step"].dtype == torch.float32 for state in fused.state.values())
    _adam_steps(fused_model, fused, 2)
    for a, b in zip(plain.parameters(), fused_model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_state_saved_with_fused_adam_resumes_on_the_cpu_exactly(synthetic_folder, tmp_path):
    quiet = dict(show_progress=False, log=lambda *a: None)
    train(tiny_options(synthetic_folder, tmp_path / "whole", steps=5), **quiet)
    train(tiny_options(synthetic_folder, tmp_path / "split", steps=3), **quiet)
    [state_file] = (tmp_path / "split" / "checkpoints").glob("state-*.pt")
    state = torch.load(state_file, weights_only=True)
    for name in ("opt_g", "opt_d"):
        for group in state[name]["param_groups"]:
            group["fused"] = True  # as a CUDA run writes it
    torch.save(state, state_file)
    train(tiny_options(synthetic_folder, tmp_path / "split", steps=5), resume=True, **quiet)
    for a, b in zip(all_weights(tmp_path / "whole"), all_weights(tmp_path / "split"), strict=True):
        assert torch.equal(a, b)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (this torch sees none)")
def test_cuda_steps_do_not_wait_for_the_gpu_and_resume_on_the_cpu(synthetic_folder, tmp_path):
    # A step queues its work and goes on: torch's sync debug mode warns at every wait for the GPU, and a
    # longer run (logs, grids and snapshots at its first step and its end only) must not wait more often.
    import warnings

    rare = dict(log_every=1000, sample_every=1000, checkpoint_every=1000, device="cuda")
    waits = []
    for steps in (4, 12):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train(tiny_options(synthetic_folder, tmp_path / f"gpu{steps}", steps=steps, **rare), **QUIET_RUN)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        waits.append(sum("synchroniz" in str(w.message) for w in caught))
    assert waits[1] <= waits[0], waits
    state = torch.load(next((tmp_path / "gpu4" / "checkpoints").glob("state-*.pt")), weights_only=True)
    assert state["opt_g"]["param_groups"][0]["fused"] is True
    # A CUDA run's state resumes on the CPU, and a CPU run's on CUDA.
    cpu_resumed = train(
        tiny_options(synthetic_folder, tmp_path / "gpu4", steps=6, device="cpu"), resume=True, **QUIET_RUN
    )
    assert cpu_resumed.step == 6
    train(tiny_options(synthetic_folder, tmp_path / "cpu", steps=2, device="cpu"), **QUIET_RUN)
    gpu_resumed = train(
        tiny_options(synthetic_folder, tmp_path / "cpu", steps=4, device="cuda"), resume=True, **QUIET_RUN
    )
    assert gpu_resumed.step == 4


@pytest.mark.slow
def test_compiled_networks_train_like_eager_ones(synthetic_folder, tmp_path):
    """--compile runs G and D through torch.compile (on a GPU, with CUDA graphs): the same training,
    up to the rounding of fused kernels."""
    from inpaint.latent import LatentPrior
    from inpaint_training.state import TrainState

    runs = {}
    for mode in ("off", "default"):
        # fp32: inductor's bf16 kernels round differently from eager's, beyond this test's tolerance.
        options = tiny_options(synthetic_folder, tmp_path / mode, steps=3, compile=mode, precision="fp32")
        train(options, **QUIET_RUN)
        losses = [(r["loss_d"], r["loss_g"]) for r in read_stats(tmp_path / mode / "stats.jsonl") if "loss_d" in r]
        runs[mode] = (losses, torch.cat([w.flatten() for w in all_weights(tmp_path / mode)]))
    assert json.loads((tmp_path / "default" / "training_options.json").read_text())["compile"] == "default"
    assert torch.allclose(torch.tensor(runs["off"][0]), torch.tensor(runs["default"][0]), rtol=1e-3)
    options = tiny_options(synthetic_folder, tmp_path / "x")
    start = TrainState.create(options, LatentPrior("uniform"), torch.device("cpu"), torch.contiguous_format)
    initial = torch.cat([w.flatten() for m in (start.generator, start.discriminator) for w in m.state_dict().values()])
    moved = (runs["off"][1] - initial).abs().mean()
    assert moved > 0
    assert (runs["default"][1] - runs["off"][1]).abs().mean() < 0.1 * moved
