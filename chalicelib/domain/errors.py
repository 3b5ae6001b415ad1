"""Errors as types. The API layer maps each to one HTTP status, once (chalicelib.api.errors)."""

from __future__ import annotations


class HeraldError(Exception):
    """Base of every error Herald reports to a caller; ``code`` is stable and machine-readable."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(HeraldError):
    """Input is well-formed but not acceptable (e.g. an unknown template id in a campaign)."""

    code = "validation_error"


class BadRequest(HeraldError):
    """Input could not be read at all (malformed JSON, wrong content type)."""

    code = "bad_request"


class Unauthorized(HeraldError):
    code = "unauthorized"


class Forbidden(HeraldError):
    code = "forbidden"


class NotFound(HeraldError):
    code = "not_found"


class Conflict(HeraldError):
    """The request clashes with existing state (a duplicate, a lost race)."""

    code = "conflict"


class InvalidTransition(Conflict):
    """A state change the state machine does not allow from the current state."""

    code = "invalid_transition"

    def __init__(self, current: str, requested: str, *, field: str | None = "status") -> None:
        super().__init__(f"cannot move from '{current}' to '{requested}'", field=field)
        self.current = current
        self.requested = requested


class PayloadTooLarge(HeraldError):
    code = "payload_too_large"


class ValidationFailures(ValidationFailed):
    """Several problems found in one input at once (a workflow graph is checked whole).

    ``field`` and ``message`` are the first problem's, so a caller that reads one error
    still gets a useful one; ``details`` lists every ``{field, message}``.
    """

    def __init__(self, details: list[dict[str, str]]) -> None:
        if not details:
            raise ValueError("ValidationFailures needs at least one problem")
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        super().__init__(first["message"] + more, field=first["field"])
        self.details = details


class Problems:
    """Every problem of one input, gathered field by field and raised together (a seed
    API that reports all of a form's errors at once, as DRF and Laravel do)."""

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.details.append({"field": field, "message": message})

    def raise_any(self) -> None:
        if self.details:
            raise ValidationFailures(self.details)


class RetryLater(HeraldError):
    """Refused for now; ``retry_after`` seconds from now it may succeed (Retry-After)."""

    def __init__(self, message: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = max(1, retry_after)


class LimitExceeded(RetryLater):
    """A per-tenant limit (quota or request rate) is used up; ``field`` names the limit."""

    code = "limit_exceeded"


class Unavailable(RetryLater):
    """A provider Herald depends on (SES's management API) is throttling or down."""

    code = "unavailable"
