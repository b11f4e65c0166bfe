"""Price models and the one function that prices a quantity (CONTRACT §6).

Pure: no SQL, no HTTP. :data:`Price` validates a price as a request gives it; :func:`price` gives what a
quantity costs under it (exact, with its tier breakdown); :func:`per_unit_price` expresses the catalog's flat
price as a model. Plans, subscriptions and negotiated prices, which decide *which* price applies, build on this.
"""

from meterbook.pricing.models import Priced, TierCharge
from meterbook.pricing.rating import per_unit_price, price
from meterbook.pricing.schemas import (
    GraduatedPrice,
    PackagePrice,
    PerUnitPrice,
    Price,
    PriceModel,
    Tier,
    VolumePrice,
    parse_price,
)

__all__ = [
    "GraduatedPrice",
    "PackagePrice",
    "PerUnitPrice",
    "Price",
    "PriceModel",
    "Priced",
    "Tier",
    "TierCharge",
    "VolumePrice",
    "parse_price",
    "per_unit_price",
    "price",
]
