"""User-supplied regular expressions (``idPattern``, ``~=``), compiled with RE2.

RE2 matches in time linear in the input, so a hostile pattern cannot stall the broker the way a
backtracking engine can be made to (ReDoS); patterns are also capped in length.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from broker.ngsild.errors import BadRequestData

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_MAX_PATTERN = 1024


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """Compile a user-supplied pattern with RE2, whose matching time is linear in the input."""
    if len(pattern) > _MAX_PATTERN:
        raise BadRequestData(f"pattern longer than {_MAX_PATTERN} characters")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise BadRequestData(f"invalid pattern {pattern!r}: {reason}") from None
