"""The one user-error type: anything the user got wrong becomes a KvcalcError."""


class KvcalcError(Exception):
    """A user error: its message is one line naming the problem and, where possible, the fix."""

    exit_code = 2


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    if not close:
        return ""
    original = {c.lower(): c for c in choices}[close[0]]
    return f" (did you mean '{original}'?)"
