"""The bases for request models.

`StrictModel`: a field the API does not define is an error, not ignored, and a value of the
wrong JSON type is an error, not coerced (`"10"` and `true` are not integers).
`RequestBody`: a whole request body, which must also travel as JSON (shared/wire/json_limits.py),
checked before any field is validated; every route's body model derives from it, so the same
limits hold on every route.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from shared.wire.json_limits import check_json_limits


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RequestBody(StrictModel):
    @model_validator(mode="before")
    @classmethod
    def _travels_as_json(cls, data: Any) -> Any:
        check_json_limits(data)
        return data
