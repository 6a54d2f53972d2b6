"""Writing files safely: atomic writes, outputs checked against inputs, stale temporaries removed.

An atomic write goes beside the target, is flushed to disk, then renamed over it: a crash or
Ctrl-C mid-write leaves the previous file intact (or no file), never a torn one. The written file
gets the usual mode from the umask, like any other tool's output.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from inpaint.errors import UserError

TEMPORARY_GLOB = ".*.tmp*"  # what atomic_path leaves behind when the process is killed mid-write


@functools.cache
def _file_mode() -> int:
    """The mode a new file gets from the umask (0644 under the usual 022), as `open` would give it;
    the temporary file's own mode is 0600."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` atomically.

    The temporary name keeps the target's suffix, so writers that pick a format from the
    extension (Pillow, torchvision.save_image) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in `folder`; returns them.
    Only call this where no other process is writing (at the start of a run or a batch)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in (folder.rglob(TEMPORARY_GLOB) if recursive else folder.glob(TEMPORARY_GLOB)) if p.is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def check_output(
    path: str | os.PathLike[str],
    inputs: tuple[str | os.PathLike[str] | None, ...] = (),
    folder: bool = False,
    what: str = "output",
) -> Path:
    """Refuse an output path before any work is done: one that is one of the inputs, a folder where
    a file is wanted or the reverse, or one under an existing file. `what` names it in messages
    (a command line passes its flag). A folder's own files are checked by passing each of them."""
    path = Path(path)
    for parent in path.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{path}: {what} cannot be written: {parent} is a file, not a folder")
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{path}: {what} must be a folder, but a file of that name exists")
    if not folder and path.is_dir():
        raise UserError(f"{path}: {what} must be a file name, but a folder of that name exists")
    target = path.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if source == target:
            raise UserError(f"{path}: {what} would overwrite the input {given}; choose another path")
    return path
