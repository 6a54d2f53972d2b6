"""The processes of a `torchrun` launch: which one this is, and how they keep in touch.

torchrun describes each process in its environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR, MASTER_PORT); a plain run is a world of one. The processes share torch.distributed's
rendezvous store (a small key-value server that torchrun's agent or rank 0 hosts): counters, flags
and heartbeats travel through it, so no rank ever waits in a collective for a rank that died.

Liveness: every rank's `Link` adds to its own heartbeat counter every second from a background
thread and watches the others'. A rank whose counter stops moving for `timeout` seconds before it
said it was done has died or hung: the watcher names it (its pid when it ran on this machine) and
interrupts the main thread, which stops cleanly. A SIGTERM (torchrun sends one to the survivors
when a rank exits with an error) stops the same way; the store failing (its host died) does too.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from inpaint.errors import UserError

HEARTBEAT_SECONDS = 1.0
DEFAULT_TIMEOUT = 30.0  # seconds without a heartbeat before a rank counts as gone


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # processes on this machine

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def local_rank_from_env() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_world_size_from_env() -> int:
    """The processes torchrun started on this machine (LOCAL_WORLD_SIZE; WORLD_SIZE if unset)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def world_from_env() -> World:
    """This process's place in a torchrun launch (a world of one outside torchrun)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return World()
        world = World(int(os.environ["RANK"]), size, local_rank_from_env(), local_world_size_from_env())
    except (KeyError, ValueError) as error:
        raise UserError(f"WORLD_SIZE is set but the launch environment is incomplete ({error}); start with torchrun")
    if not 0 <= world.rank < world.size:
        raise UserError(f"RANK {world.rank} is outside the world of {world.size} processes")
    return world


class Stopped(UserError):
    """Another rank died or hung, the launcher asked this rank to stop, or the store went away."""


class Link:
    """This rank's connection to the others through the rendezvous store (a context manager).

    `count(name)` adds to a counter every rank sees; `counters(names)` reads them; `publish` and
    `wait_for` pass a value from one rank to the rest; `finish()` says this rank is done and
    `wait_for_all()` waits (rank 0) until every rank is, both while watching heartbeats. While open,
    `on_tick` (if given) is called about once a second from the watcher thread."""

    def __init__(self, world: World, timeout: float = DEFAULT_TIMEOUT, namespace: str = "inpaint"):
        import torch.distributed as dist

        self.world, self.timeout = world, timeout
        try:
            store, _, _ = next(dist.rendezvous("env://", world.rank, world.size, timeout=timedelta(minutes=10)))
        except (RuntimeError, ValueError) as error:  # DistStoreError is a RuntimeError
            raise UserError(f"could not join the other ranks through the rendezvous store: {error}") from None
        store.set_timeout(timedelta(seconds=max(timeout, 10.0)))
        self.store = dist.PrefixStore(f"{namespace}/", store)
        self.on_tick: Callable[[], None] | None = None
        self._problem: str | None = None
        self._closing = threading.Event()
        self._finished = False
        self.store.set(f"who/{world.rank}", f"{socket.gethostname()}:{os.getpid()}")
        self.store.add(f"beat/{world.rank}", 1)
        self._watcher = threading.Thread(target=self._watch, name="rank-watcher", daemon=True)

    # --- shared values -------------------------------------------------------------------------

    def count(self, name: str, amount: int = 1) -> None:
        self._guarded(lambda: self.store.add(f"count/{name}", amount))

    def counters(self, names: list[str]) -> dict[str, int]:
        values = self._guarded(lambda: [self.store.add(f"count/{name}", 0) for name in names])
        return dict(zip(names, values))

    def publish(self, key: str, value: str) -> None:
        self._guarded(lambda: self.store.set(f"value/{key}", value))

    def wait_for(self, key: str) -> str:
        """The value `publish(key, ...)` set, waiting while the ranks are alive."""
        while not self._guarded(lambda: self.store.check([f"value/{key}"])):
            self._sleep()
        return self._guarded(lambda: self.store.get(f"value/{key}")).decode()

    def finish(self) -> None:
        self._guarded(lambda: self.store.set(f"done/{self.world.rank}", "1"))
        self._finished = True

    def wait_for_all(self) -> None:
        """Return when every rank has called finish(); Stopped if one died first."""
        keys = [f"done/{rank}" for rank in range(self.world.size)]
        while not self._guarded(lambda: self.store.check(keys)):
            self._sleep()

    # --- liveness ------------------------------------------------------------------------------

    def __enter__(self) -> Link:
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self._watcher.join(timeout=5)
        signal.signal(signal.SIGTERM, self._previous_sigterm)

    @property
    def problem(self) -> str | None:
        """Why this rank was stopped (None while all is well)."""
        return self._problem

    def _stop(self, problem: str) -> None:
        if self._problem is None:
            self._problem = problem
            _thread.interrupt_main()  # a KeyboardInterrupt in the main thread at its next bytecode

    def _on_sigterm(self, signum, frame) -> None:
        gone = self._dead_here()
        self._problem = self._problem or (
            f"stopped by the launcher: {gone}" if gone else "stopped by the launcher (SIGTERM): another rank ended"
        )
        raise Stopped(self._problem)

    def _dead_here(self) -> str:
        """The ranks on this machine whose process no longer exists ('' if none is known)."""
        host, gone = socket.gethostname(), []
        with contextlib.suppress(Exception):
            for rank in range(self.world.size):
                if rank == self.world.rank or self.store.check([f"done/{rank}"]):
                    continue
                where, _, pid = self.store.get(f"who/{rank}").decode().rpartition(":")
                if where == host and not _alive(int(pid)):
                    gone.append(f"rank {rank} (pid {pid}) has ended")
        return "; ".join(gone)

    def _watch(self) -> None:
        ranks = [r for r in range(self.world.size) if r != self.world.rank]
        last_seen = {rank: (0, time.monotonic()) for rank in ranks}
        while not self._closing.wait(HEARTBEAT_SECONDS):
            try:
                self.store.add(f"beat/{self.world.rank}", 1)
                done = set()
                for rank in ranks:
                    if self.store.check([f"done/{rank}"]):
                        done.add(rank)
                        continue
                    beat = self.store.add(f"beat/{rank}", 0)
                    if beat != last_seen[rank][0]:
                        last_seen[rank] = (beat, time.monotonic())
                    elif time.monotonic() - last_seen[rank][1] > self.timeout:
                        gone = self._dead_here()
                        self._stop(gone or f"rank {rank} has not been heard from for {self.timeout:.0f} s")
                        return
                if self.on_tick is not None:
                    self.on_tick()
            except Exception as error:  # the store's host (rank 0 or torchrun's agent) is gone
                if not self._closing.is_set():
                    self._stop(f"lost touch with the other ranks (the rendezvous store: {error})")
                return

    def _guarded(self, call):
        """A store call from the main thread; a failure becomes Stopped with the reason."""
        if self._problem is not None:
            raise Stopped(self._problem)
        try:
            return call()
        except KeyboardInterrupt:
            raise Stopped(self._problem) if self._problem else KeyboardInterrupt from None
        except RuntimeError as error:
            self._problem = self._problem or f"lost touch with the other ranks (the rendezvous store: {error})"
            raise Stopped(self._problem) from None

    def _sleep(self) -> None:
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:
            if self._problem:
                raise Stopped(self._problem) from None
            raise


@contextlib.contextmanager
def stops_as_errors(link: Link) -> Iterator[None]:
    """Inside: the watcher's interrupt (a KeyboardInterrupt it raised) becomes Stopped with its reason;
    a KeyboardInterrupt of the user's stays one."""
    try:
        yield
    except KeyboardInterrupt:
        if link.problem:
            raise Stopped(link.problem) from None
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def share_of(keys: list[str], world: World) -> set[str]:
    """This rank's share of `keys`: the rank-th of every world.size in sorted order. Every rank that
    lists the same keys gets a disjoint share, together all of them, each within one of the others'
    size; a key keeps its rank for as long as the keys listed stay the same."""
    return {key for index, key in enumerate(sorted(keys)) if index % world.size == world.rank}
