"""What the features domain accepts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, StringConstraints

from meterbook.kit.fields import INT64_MAX, NativeInput, WholeNumber

__all__ = ["FEATURE_NAME", "FeaturePut", "LimitPut"]

#: Feature names are dotted words such as ``cohort.max_count``.
FEATURE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,199}$"


class FeaturePut(NativeInput):
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""
    default_limit: WholeNumber | None = Field(
        default=None,
        ge=0,
        le=INT64_MAX,
        validation_alias=AliasChoices("default_limit", "limit"),
        description="How many may be in use at once (or per month); null for unlimited. `limit` is accepted too.",
    )
    reset: Literal["never", "monthly"] = "never"


class LimitPut(NativeInput):
    limit: WholeNumber | None = Field(ge=0, le=INT64_MAX, description="This account's limit; null for unlimited.")
