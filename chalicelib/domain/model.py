"""The base of Herald's pydantic models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic model whose validator and serializer are built on first use.

    Every Lambda function imports every module, and one invocation uses a handful of
    models: building all of them at import was about a sixth of importing app.py. A model is
    built the first time it validates, serializes or gives its JSON schema.
    """

    model_config = ConfigDict(defer_build=True)
