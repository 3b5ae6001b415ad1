"""Text that ends up in an email header: one line, no NUL.

A CR or LF in a header value starts a new header (or the body): a ``from_name`` of
``"Ann\\r\\nBcc: everyone@x"`` is an injection, not a name. Values a tenant types
(sender names, reply-to, a subject template) are refused with the field named; values
rendered from contact data at send time cannot be refused by anyone, so they are
flattened onto one line instead (``single_line``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

HEADER_BREAKS = frozenset("\r\n\x00")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def reject_header_breaks(value: str) -> str:
    """``value`` unchanged, or ValueError when it holds CR, LF or NUL (a pydantic validator)."""
    if any(ch in value for ch in HEADER_BREAKS):  # three substring scans, in C
        raise ValueError("must not contain CR, LF or NUL characters")
    return value


def _refuse_header_breaks(value: Any) -> Any:
    if isinstance(value, str):
        reject_header_breaks(value)
    return value


def single_line(value: str) -> str:
    """``value`` flattened for a header: line breaks become one space, control characters go."""
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", value)).strip()


HeaderText = Annotated[str, AfterValidator(reject_header_breaks)]
# For a type with its own validation (an email address): refuse CR/LF/NUL *first*, so the
# error says what is actually wrong.
HEADER_SAFE = BeforeValidator(_refuse_header_breaks)
