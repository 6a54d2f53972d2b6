"""The app under load: N people press Inpaint at once (the astronaut, 512×512, eyes painted over, the
default search), each from a client of their own, against a freshly started app with its real queue
(CONCURRENCY searches at once, QUEUE_SIZE waiting). Every request must finish or be refused as busy
("Queue is full"); none may fail otherwise, and the app must answer afterwards. Reports per round:
finished, refused, failed, latency p50/p90/max of the finished ones, the furthest place in the queue
and the longest estimated wait a client was shown, the server's peak memory.

  python benchmarks/app_load.py [--clients 20 40] [--checkpoint C] [--queue-size 32]

Heavy: run it on an otherwise idle machine (40 clients take a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402
from gradio_client.utils import QueueError  # noqa: E402

from inpaint.device import limit_cpu_threads  # noqa: E402
from inpaint_ui.app import CONCURRENCY, QUEUE_SIZE, serve  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_latency import astronaut_request  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASTRONAUT = ROOT / "tests" / "data" / "astronaut.jpg"
EYES = (slice(92, 124), slice(172, 278))  # a bar over both eyes


@dataclass
class Outcome:
    kind: str  # "done", "refused" or "failed"
    seconds: float
    place: int | None  # the furthest place in the queue the client was shown (0: next)
    eta: float | None  # the longest estimated wait it was shown, seconds
    message: str = ""


def one_user(url: str, args: tuple, start: float) -> Outcome:
    """One person: a client of their own, one Inpaint, watching the queue's place and estimated wait."""
    place = eta = None
    try:
        client = Client(url, verbose=False)
        job = client.submit(*args, api_name="/inpaint")
        while not job.done():
            status = job.status()
            if status.rank is not None:
                place = max(place or 0, status.rank)
            if status.eta is not None:
                eta = max(eta or 0.0, status.eta)
            time.sleep(0.2)
        outputs = job.result()
        ok = "Done in" in outputs[5]
        seconds = time.perf_counter() - start
        return Outcome("done" if ok else "failed", seconds, place, eta, "" if ok else outputs[5][-200:])
    except QueueError as error:
        return Outcome("refused", time.perf_counter() - start, place, eta, str(error))
    except Exception as error:  # noqa: BLE001 - every other failure is what this benchmark counts
        return Outcome("failed", time.perf_counter() - start, place, eta, f"{type(error).__name__}: {error}"[:300])


def peak_memory_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 40])
    parser.add_argument("--checkpoint")
    parser.add_argument("--queue-size", type=int, default=QUEUE_SIZE)
    args = parser.parse_args()
    threads = limit_cpu_threads(concurrent=CONCURRENCY)  # as `inpaint app` does
    with tempfile.TemporaryDirectory() as tmp:
        models, request, settings = astronaut_request(Path(tmp), args.checkpoint)
        app, url = serve(models, block=False, queue_size=args.queue_size)
        try:
            Client(url, verbose=False).predict(*request, api_name="/inpaint")  # load the model before timing
            print(
                f"astronaut 512×512, eyes painted over; {settings.init} start, {settings.iterations} iterations × "
                f"{settings.restarts} starts; {CONCURRENCY} searches at once, {args.queue_size} waiting at most; "
                f"{threads} threads per search"
            )
            print(
                "clients  done  refused  failed   p50 s   p90 s   max s  furthest place  longest ETA s  answers after"
                "  peak MB"
            )
            for clients in args.clients:
                start = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    outcomes = list(pool.map(one_user, [url] * clients, [request] * clients, [start] * clients))
                done = sorted(o.seconds for o in outcomes if o.kind == "done")
                counts = {kind: sum(o.kind == kind for o in outcomes) for kind in ("done", "refused", "failed")}
                places = [o.place for o in outcomes if o.place is not None]
                etas = [o.eta for o in outcomes if o.eta is not None]
                try:
                    answers = "DCGAN" in Client(url, verbose=False).predict(request[0], api_name="/describe_model")[0]
                except Exception as error:  # noqa: BLE001
                    answers, outcomes = False, outcomes + [Outcome("failed", 0, None, None, f"afterwards: {error}")]
                percentiles = statistics.quantiles(done, n=100, method="inclusive") if len(done) > 1 else None
                p50, p90 = (f"{percentiles[q - 1]:7.1f}" if percentiles else "      -" for q in (50, 90))
                longest = max(done, default=float("nan"))
                print(
                    f"{clients:7d} {counts['done']:5d} {counts['refused']:8d} {counts['failed']:7d} {p50} {p90} "
                    f"{longest:7.1f} {max(places, default=-1):15d} {max(etas, default=float('nan')):14.1f} "
                    f"{'yes' if answers else 'NO':>14s} {peak_memory_mb():8.0f}"
                )
                for message in sorted({o.message for o in outcomes if o.kind != "done" and o.message}):
                    print(f"    {message}")
        finally:
            app.close()
            app.scratch.remove()


if __name__ == "__main__":
    main()
