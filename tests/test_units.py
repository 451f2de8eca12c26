"""Parsing and formatting of sizes and token counts."""

from __future__ import annotations

import re

import pytest

from kvcalc.errors import KvcalcError
from kvcalc.units import (
    format_bytes,
    format_gb,
    format_gib,
    parse_count,
    parse_size,
    parse_tokens,
)


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
     ("85017493504B", 85017493504), ("85017493504 b", 85017493504), ("512MiB", 512 * 2**20), ("1.5GiB", 3 * 2**29),
     ("0", 0)],
)  # fmt: skip
def test_parse_size_units(text: str, expected: int) -> None:
    """GB is 10^9 and GiB is 2^30, exactly."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["80G", "-1GB", "lots", "80 parsecs", "80", "85017493504", "1e9"])
def test_parse_size_rejects_ambiguous_or_bad_units(text: str) -> None:
    """A bare 'G' is ambiguous and refused, as are negative sizes and numbers without a unit."""
    with pytest.raises(KvcalcError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [("80", "80 what? say 80GB or 80GiB"), ("80G", "say 80GB (10^9) or 80GiB (2^30)"),
     ("4m", "say 4MB (10^6) or 4MiB (2^20)")],
)  # fmt: skip
def test_parse_size_says_what_to_write(text: str, needle: str) -> None:
    """A unit-less or ambiguous size is refused with the two spellings that are meant."""
    with pytest.raises(KvcalcError, match=re.escape(needle)):
        parse_size(text, "--gpu-mem")


def test_batch_error_speaks_of_sequences() -> None:
    """`--batch 2.5` is not 'a whole number of tokens' but of sequences."""
    with pytest.raises(KvcalcError, match="not a whole number of sequences"):
        parse_count("2.5", "--batch")


def test_format_shows_both_units() -> None:
    """The OPT-30B seed example: 180,388,626,432 B = 180.39 GB = 168.00 GiB."""
    n = 180_388_626_432
    assert format_gb(n) == "180.39 GB"
    assert format_gib(n) == "168.00 GiB"
    assert format_bytes(n) == "180,388,626,432 B = 180.39 GB = 168.00 GiB"
