"""What the ledger accepts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from meterbook.kit.fields import INT64_MAX, NativeInput, WholeNumber

__all__ = ["CreditGrant"]


class CreditGrant(NativeInput):
    id: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="Your id for this grant: sending it again does nothing more."
    )
    amount: WholeNumber = Field(gt=0, le=INT64_MAX, description="Whole credits to add.")
    type: Literal["grant", "purchase"] = Field(default="grant", description="A free grant, or credits bought.")
    source: Annotated[str, StringConstraints(max_length=100)] | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    metadata: dict[str, Any] | None = None
