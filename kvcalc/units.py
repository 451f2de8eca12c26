"""Exact sizes and token counts: parse "80GiB" / "80GB" / "8k", format as GB (10^9) and GiB (2^30)."""

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
_POWER = {"k": 3, "m": 6, "g": 9, "t": 12}
_SIZE_RE = re.compile(r"^\s*(\d[\d_,]*(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)

# Anything above this is a typo, not a workload (2^40 tokens is beyond every model's context).
MAX_TOKENS = 2**40


def _number(text: str) -> Fraction:
    return Fraction(text.replace("_", "").replace(",", ""))


def parse_tokens(text: str | int, what: str = "token count", unit: str = "tokens") -> int:
    """Return a positive token count from '8192', '8k' (= 8192) or '128k' (= 131072)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = Fraction(text)
    else:
        match = _TOKEN_RE.match(str(text))
        if not match:
            hint = (
                "expected a positive integer or a k/m suffix (8k = 8192, 128k = 131072)"
                if unit == "tokens"
                else "expected a positive whole number"
            )
            raise KvcalcError(f"invalid {what} {str(text)!r}: {hint}")
        value = _number(match.group(1)) * _TOKEN_SUFFIX[match.group(2).lower()]
    if value.denominator != 1:
        raise KvcalcError(f"invalid {what} {str(text)!r}: not a whole number of {unit}")
    if value <= 0:
        raise KvcalcError(f"invalid {what} {str(text)!r}: must be at least 1")
    if value > MAX_TOKENS:
        raise KvcalcError(f"invalid {what} {str(text)!r}: absurdly large (limit is 2^40)")
    return int(value)


def parse_count(text: str | int, what: str, maximum: int = 2**31) -> int:
    """Return a positive integer (batch, GPUs, tp ...) from a plain number or a k suffix."""
    value = parse_tokens(text, what, unit="sequences" if "batch" in what else "units")
    if value > maximum:
        raise KvcalcError(f"invalid {what} {str(text)!r}: absurdly large (limit is {maximum:,})")
    return value


def parse_size(text: str | int, what: str = "size") -> int:
    """Return bytes from '80GB' (80·10^9), '80GiB' (80·2^30) or '85017493504B'; rounds down.

    A number without a unit is refused (is `--gpu-mem 80` 80 GB, 80 GiB or 80 bytes?), except 0;
    so is a bare 'G' or 'M', which could be either.
    """
    if isinstance(text, bool):
        raise KvcalcError(f"invalid {what} {text!r}: expected a size such as 80GB or 80GiB")
    match = _SIZE_RE.match(str(text))
    suffix = match.group(2).lower() if match else ""
    if match and suffix in ("k", "m", "g", "t"):
        n = match.group(1)
        raise KvcalcError(
            f"invalid {what} {str(text)!r}: {suffix.upper()!r} is ambiguous: "
            f"say {n}{suffix.upper()}B (10^{_POWER[suffix]}) or {n}{suffix.upper()}iB "
            f"(2^{_POWER[suffix] // 3 * 10})"
        )
    if not match or suffix not in _SIZE_SUFFIX:
        if str(text).strip().startswith("-"):
            raise KvcalcError(f"invalid {what} {str(text)!r}: must not be negative")
        raise KvcalcError(
            f"invalid {what} {str(text)!r}: expected a number with a unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 80GB or 80GiB"
        )
    value = _number(match.group(1)) * _SIZE_SUFFIX[suffix]
    if suffix == "" and value != 0:
        n = match.group(1)
        raise KvcalcError(
            f"invalid {what} {str(text)!r}: {n} what? say {n}GB or {n}GiB ({n}B for bytes)"
        )
    if value > 2**60:
        raise KvcalcError(f"invalid {what} {str(text)!r}: absurdly large (limit is 2^60 B = 1 EiB)")
    return int(value)  # floor: a fraction of a byte is not memory


def format_gb(n_bytes: int) -> str:
    """Return n_bytes in decimal gigabytes (10^9), e.g. '180.39 GB'."""
    return f"{n_bytes / GB:,.2f} GB"


def format_gib(n_bytes: int) -> str:
    """Return n_bytes in binary gibibytes (2^30), e.g. '168.00 GiB'."""
    return f"{n_bytes / GiB:,.2f} GiB"


_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def format_binary(n_bytes: int) -> str:
    """Return n_bytes in the largest binary unit (2^10k) it reaches: '1.31 MiB', '168.00 GiB'.

    Below 1 KiB the exact bytes ('512 B'). The model is rich/filesize.py, in binary units too.
    """
    size = abs(n_bytes)
    if size < 2**10:
        return f"{n_bytes:,} B"
    k = min((size.bit_length() - 1) // 10, len(_BINARY_UNITS) - 1)
    return f"{n_bytes / 2 ** (10 * k):,.2f} {_BINARY_UNITS[k]}"


def format_decimal(n_bytes: int) -> str:
    """Return n_bytes in the largest decimal unit (10^3k) it reaches: '1.38 MB', '180.39 GB'."""
    size = abs(n_bytes)
    if size < 10**3:
        return f"{n_bytes:,} B"
    k = min((len(str(size)) - 1) // 3, len(_DECIMAL_UNITS) - 1)
    return f"{n_bytes / 10 ** (3 * k):,.2f} {_DECIMAL_UNITS[k]}"


def format_bytes(n_bytes: int) -> str:
    """Return '180,388,626,432 B = 180.39 GB = 168.00 GiB': exact bytes, then both units."""
    return f"{n_bytes:,} B = {format_gb(n_bytes)} = {format_gib(n_bytes)}"
