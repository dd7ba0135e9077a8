"""The one base for request models: a field the API does not define is an error, not ignored,
and a value of the wrong JSON type is an error, not coerced (`"10"` and `true` are not integers)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
