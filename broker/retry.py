"""How long to wait before trying again: the one backoff rule of the broker.

Notification retries and MQTT reconnections both use exponential backoff with *full jitter*
(``uniform(0, min(cap, base * 2**failures))``): spreading the retries of many clients over the
whole interval is what keeps a receiver or broker that comes back from being hit by every one of
them at the same instant (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).
"""

from __future__ import annotations

import random

_RNG = random.Random()  # noqa: S311 - jitter, not secrecy


def full_jitter(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0 for the first retry's bound
    of ``base``): uniform in ``[0, min(cap, base * 2**failures)]``."""
    bound = min(cap, base * 2 ** min(failures, 32))
    return (rng or _RNG).uniform(0.0, bound)
