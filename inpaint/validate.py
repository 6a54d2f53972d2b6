"""Checking numbers where they enter: command-line flags, the app's fields and a file's metadata.

One rule for all of them: a value must be a finite number of the right kind inside its range, or
the user gets one line naming the value and the range. NaN compares false with everything, so a
plain `if x < 0` lets it through; every check here starts by refusing non-finite values.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from inpaint.errors import UserError

# Counts that size an allocation or a loop (samples, frames, variations, iterations…): far above
# any real use, far below what would exhaust memory or never end.
MAX_COUNT = 100_000


def check_number(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = False,
    low_open: bool = False,
    high_open: bool = False,
) -> float | int:
    """`value` as a finite float (or int) with low ≤ value ≤ high (strict with low_open/high_open).

    Raises UserError("NAME: must be …, got VALUE") otherwise; strings of numbers are accepted.
    """
    number = _parse(value, name, integer)
    too_low = low is not None and (number < low or (low_open and number == low))
    too_high = high is not None and (number > high or (high_open and number == high))
    if too_low or too_high:
        raise UserError(f"{name}: must be {_range(low, high, integer, low_open, high_open)}, got {value}")
    return number


def _parse(value: Any, name: str, integer: bool) -> float | int:
    if isinstance(value, bool):
        raise UserError(f"{name}: must be a number, got {value}")
    if integer and isinstance(value, str):
        try:  # exactly: a float holds whole numbers exactly only up to 2**53
            return int(value.strip())
        except ValueError:
            pass
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{name}: must be {'a whole number' if integer else 'a number'}, got {value!r}") from None
    if not math.isfinite(number):
        raise UserError(f"{name}: must be a finite number, got {value}")
    if not integer:
        return number
    if isinstance(value, int):
        return value
    try:
        whole = int(value) if isinstance(value, str) else int(number)
    except ValueError:
        whole = None
    if whole is None or whole != number:
        raise UserError(f"{name}: must be a whole number, got {value}")
    return whole


def _range(low: float | None, high: float | None, integer: bool, low_open: bool, high_open: bool) -> str:
    kind = "a whole number" if integer else "a number"
    lower = low is not None and (f"above {_show(low)}" if low_open else f"at least {_show(low)}")
    upper = high is not None and (f"below {_show(high)}" if high_open else f"at most {_show(high)}")
    if lower and upper:
        if not (low_open or high_open):
            return f"{kind} from {_show(low)} to {_show(high)}"
        return f"{lower} and {upper}"
    return lower or upper


def _show(bound: float | None) -> str:
    return f"{int(bound):,}" if bound is not None and bound == int(bound) else f"{bound:g}"


def number_arg(
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = False,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float | int]:
    """An argparse `type=` that applies check_number; argparse prefixes the flag's name."""

    def parse(text: str) -> float | int:
        try:
            return check_number(text, "", low, high, integer=integer, low_open=low_open, high_open=high_open)
        except UserError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(": ")) from None

    parse.__name__ = "integer" if integer else "number"  # argparse names the type in its messages
    return parse


def count_arg(low: int = 1, high: int = MAX_COUNT) -> Callable[[str], int]:
    return number_arg(low, high, integer=True)  # type: ignore[return-value]


def auto_or(parse: Callable[[str], float | int]) -> Callable[[str], float | int | str]:
    """An argparse `type=` that takes the word auto, or what `parse` takes."""

    def parse_or_auto(text: str) -> float | int | str:
        return "auto" if text == "auto" else parse(text)

    parse_or_auto.__name__ = parse.__name__
    return parse_or_auto


SEED_MAX = 2**63 - 1  # numpy's and torch's generators take seeds in [0, 2**63)
seed_arg = number_arg(0, SEED_MAX, integer=True)
