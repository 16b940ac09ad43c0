"""One module per notebook: the procedure behind a table, so notebooks stay thin."""

from __future__ import annotations

from collections.abc import Sequence


def resolve_seeds(default: Sequence[int], seeds: object) -> tuple[int, ...]:
    """The seeds a run uses: the profile's default, or a caller's list of ints (anything else is an error)."""
    if seeds is None or seeds == []:
        return tuple(default)
    if not isinstance(seeds, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"parameter 'seeds' must be a list of integers (e.g. [0, 1, 2]) or None, got {seeds!r}")
    return tuple(seeds)
