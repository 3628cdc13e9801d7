"""Choices matched as people type them: case-insensitively, with "did you mean" for typos.

A choice (``--format JSON``, ``--method rk45``, ``activation = "Tanh"``) is accepted when it
matches exactly one allowed choice ignoring case, and canonicalised to that choice's spelling
(:func:`match_choice`); anything else is refused with the closest choices
(:func:`did_you_mean`, from :func:`difflib.get_close_matches`). Unknown keys get the same
suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "match_choice"]


def match_choice(value: str, choices: Iterable[str]) -> str | None:
    """The choice ``value`` names: itself, or the one choice equal to it ignoring case;
    ``None`` when there is none or it is ambiguous."""
    choices = list(choices)
    if value in choices:
        return value
    same = [c for c in choices if c.casefold() == value.casefold()]
    return same[0] if len(same) == 1 else None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` (ignoring case), or ``""``."""
    folded: dict[str, str] = {}
    for c in choices:
        folded.setdefault(c.casefold(), c)
    close = difflib.get_close_matches(value.casefold(), list(folded), n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(folded[c]) for c in close) + "?)"
