"""What the seed dialects share: native input models built from translated fields, and
errors named in the seed's terms."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chalicelib.domain.errors import ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)


def native(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """``values`` (translated from a seed's fields) as the native input ``model``.

    A value the native model refuses is a ValidationFailed naming the native field (the
    dialect renames it), never an unhandled pydantic error.
    """
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        field = ".".join(str(part) for part in problem["loc"]) or None
        raise ValidationFailed(problem["msg"], field=field) from None


@contextmanager
def fields_renamed(rename: Callable[[str], str | None]) -> Iterator[None]:
    """A ValidationFailed raised inside names the seed's field (``rename`` of the native
    one; None: no field) instead of the native field the domain checked."""
    try:
        yield
    except ValidationFailed as error:
        if error.field is not None:
            error.field = rename(error.field)
        raise
