"""Bounds on numbers a user gives on the command line: threads and seeds. Standard library only."""

from __future__ import annotations

import os

from termlm.errors import ConfigError

SEED_MAX = 2**32 - 1  # numpy's and torch's seeds alike take 0 .. 2**32 - 1


def machine_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_threads(value: int | None, flag: str = "--threads") -> int | None:
    """``value`` if it is None or between 1 and the machine's cores; else ConfigError."""
    if value is None:
        return None
    cores = machine_cores()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cores:
        raise ConfigError(
            f"{flag} must be between 1 and {cores} (the CPU cores here), got {value!r}",
            f"leave it out to let termlm choose, or give at most {flag} {cores}",
        )
    return value


def check_seed(value: int | None, flag: str = "--seed") -> int | None:
    """``value`` if it is None or a whole number in [0, 2**32 - 1]; else ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise ConfigError(
            f"{flag} must be a whole number from 0 to {SEED_MAX}, got {value!r}",
            f"for example {flag} 1337",
        )
    return value
