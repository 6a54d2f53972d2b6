"""Append-only JSON-lines logs that survive being cut short: a training run's stats.jsonl and a
batch's report.jsonl.

They are appended to, not rewritten, so a kill or a full disk can leave a torn last line. Readers
skip lines that are not records (with one warning naming them); the next append first cuts an
unterminated last line off, so the file heals itself.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

Warn = Callable[[str], None]


def warn_on_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def parse_records(path: Path, is_record: Callable[[Any], bool]) -> tuple[list[dict[str, Any]], list[int]]:
    """(records, numbers of the lines that are not records). A record is a JSON object that
    `is_record` accepts; anything else is a torn write or not ours."""
    records, bad = [], []
    for number, line in enumerate(Path(path).read_bytes().split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            record = None
        if isinstance(record, dict) and is_record(record):
            records.append(record)
        else:
            bad.append(number)
    return records, bad


def read_records(path: Path, is_record: Callable[[Any], bool], warn: Warn = warn_on_stderr) -> list[dict[str, Any]]:
    """The records of a log ([] if there is none), skipping torn or foreign lines with one warning."""
    path = Path(path)
    if not path.exists():
        return []
    records, bad = parse_records(path, is_record)
    if bad:
        warn(f"warning: {path}: skipped {describe_bad_lines(bad)}")
    return records


def describe_bad_lines(lines: list[int]) -> str:
    where = ", ".join(map(str, lines[:5])) + (", …" if len(lines) > 5 else "")
    return f"{len(lines)} unreadable line(s) (line {where}: a torn write or not a record of this log)"


def append_record(path: Path, record: dict[str, Any], warn: Warn = warn_on_stderr) -> None:
    """Append one record as a line, first cutting off a torn last line left by an earlier kill."""
    with open(path, "a+b") as handle:  # appending mode: writes go to the end whatever the position
        if _drop_torn_tail(handle):
            warn(f"warning: {path}: dropped a torn last line (a write cut short by a kill or full disk)")
        handle.write((json.dumps(record) + "\n").encode("utf-8"))


def _drop_torn_tail(handle: BinaryIO) -> bool:
    """Truncate an unterminated last line (every complete line ends in a newline); True if one was."""
    end = handle.seek(0, os.SEEK_END)
    if end == 0:
        return False
    handle.seek(end - 1)
    if handle.read(1) == b"\n":
        return False
    position = end
    while position > 0:  # back to the last newline, a block at a time
        start = max(0, position - 65536)
        handle.seek(start)
        newline = handle.read(position - start).rfind(b"\n")
        if newline >= 0:
            handle.truncate(start + newline + 1)
            return True
        position = start
    handle.truncate(0)
    return True
