"""Shapes shared by every resource of the native API, and the base of every API model."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ApiModel(BaseModel):
    """Base of every model the API defines: its validator and schema are built on first use.

    Every Lambda function imports every blueprint, and one invocation uses a handful of
    models; building all of them at import made each cold start pay for the whole API.
    """

    model_config = ConfigDict(defer_build=True)


class Input(ApiModel):
    """Base of every request model: unknown fields are refused, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ListQuery(Input):
    """Cursor pagination, the same on every native list route."""

    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=2048)


class ListPage(ApiModel, Generic[T]):
    """A page of results; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[T]
    next_cursor: str | None = None
