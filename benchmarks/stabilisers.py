"""Which training stabilisers help: short runs of `inpaint train` that differ in one option each,
scored against the held-out images (lower is better): the sliced Wasserstein distance for any set,
and the Fréchet face distance as well for faces.

Every run of a seed uses the same data, held-out split and step count, and keeps an exponential
moving average of G, so each row gives the score of the moving average and of the raw generator.
With several seeds, each variant's mean and the spread between seeds (standard deviation) tell
whether a difference is more than the luck of one run:

  python benchmarks/stabilisers.py --data ../shared/data/celeba --steps 615 --out runs/stabilisers
  python benchmarks/stabilisers.py --data ../shared/data/flowers --steps 300 --seeds 0 1 \\
      --out runs/stabilisers-flowers -- --g-width 32 --d-width 32

Variants: baseline (none), diffaug (color,translation,cutout), label smoothing 0.1, and a slower
discriminator (--lr-d 1e-4 against G's 2e-4). Flags after `--` go to every run. A finished run is
not trained again; an interrupted one resumes. Runs are deterministic per step, so the baseline's
score equals that of any run with the same seed and options at the same step. The GAN alone is
trained (--no-encoder): the encoder plays no part in these scores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from inpaint.images import find_images
from inpaint_training.run_dir import latest_snapshot

VARIANTS = {
    "baseline": [],
    "diffaug": ["--diffaug", "color,translation,cutout"],
    "label-smoothing": ["--label-smoothing", "0.1"],
    "lr-d-1e-4": ["--lr-d", "1e-4"],
}
SCORES = ("swd", "swd_raw", "frechet", "frechet_raw")


def last_eval(run_dir: Path) -> dict | None:
    stats = run_dir / "stats.jsonl"
    if not stats.is_file():
        return None
    evals = [json.loads(line) for line in stats.read_text().splitlines() if '"eval"' in line]
    return evals[-1] if evals else None


def train_variant(args: argparse.Namespace, run_dir: Path, variant: list[str], seed: int, eval_every: float) -> dict:
    record = last_eval(run_dir)
    if record is None or record["step"] < args.steps:
        if latest_snapshot(run_dir) is not None:
            command = ["--resume", str(run_dir), "--steps", str(args.steps)]  # an interrupted run continues
        else:
            shutil.rmtree(run_dir, ignore_errors=True)  # cut short before its first snapshot: start again
            command = ["--data", args.data, "--out", str(run_dir), "--steps", str(args.steps)]
            command += ["--val-count", str(args.val_count), "--batch-size", str(args.batch_size)]
            command += ["--eval-every", f"{eval_every:.6f}", "--eval-samples", str(args.eval_samples)]
            command += ["--ema-decay", "0.999", "--seed", str(seed), "--no-encoder"]
            command += ["--sample-every", str(args.steps), "--checkpoint-every", str(args.steps)]
            command += [*variant, *args.train_options]
        print(f"\n== inpaint train {' '.join(command)}", flush=True)
        subprocess.run([sys.executable, "-m", "inpaint", "train", *command], check=True)
        record = last_eval(run_dir)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="runs/stabilisers")
    parser.add_argument("--steps", type=int, default=615, help="steps per run; scored once at the end")
    parser.add_argument("--val-count", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-samples", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per variant and seed")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("train_options", nargs="*", help="after --: more `inpaint train` flags for every run")
    args = parser.parse_args()

    out = Path(args.out)
    # --eval-every is in epochs: score exactly once, at the last step.
    steps_per_epoch = (len(find_images(args.data)[0]) - args.val_count) // args.batch_size
    eval_every = args.steps / steps_per_epoch
    rows: dict[str, list[dict]] = {}
    for seed in args.seeds:  # every variant of one seed before the next seed: a cut-short sweep still compares
        for name in args.variants:
            run_dir = out / (name if args.seeds == [0] else f"{name}-seed{seed}")
            rows.setdefault(name, []).append(train_variant(args, run_dir, VARIANTS[name], seed, eval_every))
    present = [key for key in SCORES if all(key in r for runs in rows.values() for r in runs)]
    print(f"\nscores after {args.steps} steps ({steps_per_epoch} a epoch), seeds {args.seeds} (lower is better)")
    print("| variant | " + " | ".join(present) + " |")
    print("|---|" + "---|" * len(present))
    for name, runs in rows.items():
        cells = []
        for key in present:
            values = np.array([r[key] for r in runs])
            spread = f" ± {values.std(ddof=1):.4g}" if len(values) > 1 else ""
            cells.append(f"{values.mean():.4g}{spread}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
