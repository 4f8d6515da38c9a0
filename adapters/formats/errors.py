"""The one error a payload decoder raises.

Whatever a device or a network server sends is a *remote* fault when it cannot be decoded: the
ingest loop counts it by ``reason``, sets the message aside and carries on. Any other exception
escaping a decoder is therefore our own bug, which is why the decoders translate every failure
of the libraries they use (JSON, base64, ``struct``) into this one type.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Reason = Literal[
    "malformed_json",
    "bad_topic",
    "bad_envelope",
    "undecodable_payload",
    "truncated_payload",
    "unknown_lpp_type",
    "out_of_range",
]
"""Short, stable slugs; they become the ``reason`` label of the ingest error counter."""

REASONS: Final[frozenset[str]] = frozenset(get_args(Reason))


class DecodeError(ValueError):
    """A message that cannot be turned into measures.

    Attributes:
        reason: one of ``REASONS``, fit to be a metrics label.
        message: a sentence for the log saying what exactly was wrong.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        # Both in args, so the error survives pickling (e.g. across a process pool).
        super().__init__(reason, message)
        self.reason: Reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message
