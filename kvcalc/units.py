"""Exact sizes and token counts: parse "80GiB" / "80GB" / "8k", format as GB (10^9) and GiB (2^30)."""

from __future__ import annotations

import re
from fractions import Fraction

from kvcalc.errors import KvcalcError

GB = 10**9
GiB = 2**30
MiB = 2**20

# Token counts use binary suffixes, as the field does: 8k = 8192, 128k = 131072.
_TOKEN_SUFFIX = {"": 1, "k": 2**10, "m": 2**20}
_TOKEN_RE = re.compile(r"^\s*(\d[\d_,]*(?:\.\d+)?)\s*([km]?)\s*$", re.IGNORECASE)

_SIZE_SUFFIX = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*(\d[\d_,]*(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)

# Anything above this is a typo, not a workload (2^40 tokens is beyond every model's context).
MAX_TOKENS = 2**40


def _number(text: str) -> Fraction:
    return Fraction(text.replace("_", "").replace(",", ""))


def parse_tokens(text: str | int, what: str = "token count") -> int:
    """Return a positive token count from '8192', '8k' (= 8192) or '128k' (= 131072)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = Fraction(text)
    else:
        match = _TOKEN_RE.match(str(text))
        if not match:
            raise KvcalcError(
                f"invalid {what} {str(text)!r}: expected a positive integer or a k/m suffix "
                "(8k = 8192, 128k = 131072)"
            )
        value = _number(match.group(1)) * _TOKEN_SUFFIX[match.group(2).lower()]
    if value.denominator != 1:
        raise KvcalcError(f"invalid {what} {str(text)!r}: not a whole number of tokens")
    if value <= 0:
        raise KvcalcError(f"invalid {what} {str(text)!r}: must be at least 1")
    if value > MAX_TOKENS:
        raise KvcalcError(f"invalid {what} {str(text)!r}: absurdly large (limit is 2^40)")
    return int(value)


def parse_count(text: str | int, what: str, maximum: int = 2**31) -> int:
    """Return a positive integer (batch, GPUs, tp ...) from a plain number or a k suffix."""
    value = parse_tokens(text, what)
    if value > maximum:
        raise KvcalcError(f"invalid {what} {str(text)!r}: absurdly large (limit is {maximum:,})")
    return value


def parse_size(text: str | int, what: str = "size") -> int:
    """Return bytes from '85017493504', '80GB' (80·10^9) or '80GiB' (80·2^30); rounds down."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = Fraction(text)
    else:
        match = _SIZE_RE.match(str(text))
        suffix = match.group(2).lower() if match else ""
        if not match or suffix not in _SIZE_SUFFIX:
            raise KvcalcError(
                f"invalid {what} {str(text)!r}: expected bytes or a number with a unit "
                "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            )
        value = _number(match.group(1)) * _SIZE_SUFFIX[suffix]
    if value < 0:
        raise KvcalcError(f"invalid {what} {str(text)!r}: must not be negative")
    if value > 2**60:
        raise KvcalcError(f"invalid {what} {str(text)!r}: absurdly large")
    return int(value)  # floor: a fraction of a byte is not memory


def format_gb(n_bytes: int) -> str:
    """Return n_bytes in decimal gigabytes (10^9), e.g. '180.39 GB'."""
    return f"{n_bytes / GB:,.2f} GB"


def format_gib(n_bytes: int) -> str:
    """Return n_bytes in binary gibibytes (2^30), e.g. '168.00 GiB'."""
    return f"{n_bytes / GiB:,.2f} GiB"


def format_bytes(n_bytes: int) -> str:
    """Return '180,388,626,432 B = 180.39 GB = 168.00 GiB': exact bytes, then both units."""
    return f"{n_bytes:,} B = {format_gb(n_bytes)} = {format_gib(n_bytes)}"
