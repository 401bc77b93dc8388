"""The base of every answer model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: The arguments of a route declaring ``response_model=``: the answer as the core built
#: it, checked against the model, with no field added that the core left out.
VALIDATED = {"response_model_exclude_unset": True}


class Schema(BaseModel):
    """An answer: the named fields are documented and checked; others pass through."""

    model_config = ConfigDict(extra="allow")


#: Times are ISO 8601 text with an offset, as the core writes them (never re-parsed).
TIME = "ISO 8601 date and time with offset."
