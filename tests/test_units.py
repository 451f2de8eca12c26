"""Parsing and formatting of sizes and token counts."""

from __future__ import annotations

import pytest

from kvcalc.errors import KvcalcError
from kvcalc.units import format_bytes, format_gb, format_gib, parse_size, parse_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8192", 8192), ("8k", 8192), ("8K", 8192), ("128k", 131072), ("1m", 1048576),
     ("1.5k", 1536), ("32_768", 32768), (4096, 4096)],
)  # fmt: skip
def test_parse_tokens_binary_suffixes(text: str | int, expected: int) -> None:
    """Token suffixes are binary, as the field uses them: 8k = 8192."""
    assert parse_tokens(text) == expected


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1.3", "8kb", "", "1e9", "99999999999999m"])
def test_parse_tokens_rejects_bad_input(text: str) -> None:
    """Non-positive, fractional, non-numeric and absurd token counts are user errors."""
    with pytest.raises(KvcalcError):
        parse_tokens(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("80GB", 80 * 10**9), ("80GiB", 80 * 2**30), ("80 gib", 80 * 2**30),
     ("85017493504", 85017493504), ("512MiB", 512 * 2**20), ("1.5GiB", 3 * 2**29),
     ("0", 0)],
)  # fmt: skip
def test_parse_size_units(text: str, expected: int) -> None:
    """GB is 10^9 and GiB is 2^30, exactly."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["80G", "-1GB", "lots", "80 parsecs"])
def test_parse_size_rejects_ambiguous_or_bad_units(text: str) -> None:
    """A bare 'G' is ambiguous and refused, as are negative sizes."""
    with pytest.raises(KvcalcError):
        parse_size(text)


def test_format_shows_both_units() -> None:
    """The OPT-30B seed example: 180,388,626,432 B = 180.39 GB = 168.00 GiB."""
    n = 180_388_626_432
    assert format_gb(n) == "180.39 GB"
    assert format_gib(n) == "168.00 GiB"
    assert format_bytes(n) == "180,388,626,432 B = 180.39 GB = 168.00 GiB"
