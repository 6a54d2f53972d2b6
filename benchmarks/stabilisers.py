"""Which training stabilisers help: short runs of `inpaint train` that differ in one option each,
scored by the Fréchet face distance against the held-out faces (lower is better).

Every run uses the same seed, data, held-out split and step count, and keeps an exponential moving
average of G, so each row gives the score of the moving average and of the raw generator:

  python benchmarks/stabilisers.py --data ../shared/data/celeba --steps 615 --out runs/stabilisers

Variants: baseline (none), diffaug (color,translation,cutout), label smoothing 0.1, and a slower
discriminator (--lr-d 1e-4 against G's 2e-4). A finished variant is not trained again; an
interrupted one resumes. Runs are deterministic per step, so the baseline's score equals that of
any run with the same seed and options at the same step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from inpaint.images import find_images

VARIANTS = {
    "baseline": [],
    "diffaug": ["--diffaug", "color,translation,cutout"],
    "label-smoothing": ["--label-smoothing", "0.1"],
    "lr-d-1e-4": ["--lr-d", "1e-4"],
}


def last_eval(run_dir: Path) -> dict | None:
    stats = run_dir / "stats.jsonl"
    if not stats.is_file():
        return None
    evals = [json.loads(line) for line in stats.read_text().splitlines() if '"eval"' in line]
    return evals[-1] if evals else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="runs/stabilisers")
    parser.add_argument("--steps", type=int, default=615, help="steps per run; scored once at the end")
    parser.add_argument("--val-count", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-samples", type=int, default=500)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()

    out = Path(args.out)
    # --eval-every is in epochs: score exactly once, at the last step.
    steps_per_epoch = (len(find_images(args.data)[0]) - args.val_count) // args.batch_size
    eval_every = args.steps / steps_per_epoch
    rows = {}
    for name in args.variants:
        run_dir = out / name
        record = last_eval(run_dir)
        if record is None or record["step"] < args.steps:
            if (run_dir / "training_options.json").is_file():
                command = ["--resume", str(run_dir), "--steps", str(args.steps)]  # an interrupted variant continues
            else:
                command = [
                    "--data",
                    args.data,
                    "--out",
                    str(run_dir),
                    "--steps",
                    str(args.steps),
                    "--val-count",
                    str(args.val_count),
                    "--batch-size",
                    str(args.batch_size),
                    "--eval-every",
                    f"{eval_every:.6f}",
                    "--eval-samples",
                    str(args.eval_samples),
                    "--channels-last",
                    "--ema-decay",
                    "0.999",
                    "--sample-every",
                    str(args.steps),
                    "--checkpoint-every",
                    str(args.steps),
                    *VARIANTS[name],
                ]
            print(f"\n== {name}: inpaint train {' '.join(command)}", flush=True)
            subprocess.run([sys.executable, "-m", "inpaint", "train", *command], check=True)
        rows[name] = last_eval(run_dir)
    print(f"\nFréchet face distance after {args.steps} steps (lower is better)")
    print("| variant | moving average of G | raw G |")
    print("|---|---|---|")
    for name, record in rows.items():
        print(f"| {name} | {record['frechet']:.4f} | {record.get('frechet_raw', float('nan')):.4f} |")
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
