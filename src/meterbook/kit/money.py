"""Money and quantities: ``Decimal`` in arithmetic, integers at a fixed scale in storage.

Rounding happens in exactly one place (:func:`round_to_minor_unit`), half away from zero, and the
contract allows it only on invoice lines.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "CURRENCY_EXPONENTS",
    "MONEY_SCALE",
    "from_scaled",
    "is_currency",
    "round_to_minor_unit",
    "to_scaled",
]

#: Money amounts that are not yet rounded (prices, commitments) are stored as integers of 10**-9.
MONEY_SCALE = 9

# ISO 4217 active codes and the number of digits of their minor unit. Codes absent from the
# exceptions below use two digits.
_ZERO_DIGIT = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DIGIT = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DIGIT = "CLF UYW"
_TWO_DIGIT = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
    "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD "
    "LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN "
    "PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB "
    "TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)

CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_TWO_DIGIT.split(), 2),
    **dict.fromkeys(_ZERO_DIGIT.split(), 0),
    **dict.fromkeys(_THREE_DIGIT.split(), 3),
    **dict.fromkeys(_FOUR_DIGIT.split(), 4),
}


def is_currency(code: str) -> bool:
    return code in CURRENCY_EXPONENTS


def round_to_minor_unit(amount: Decimal, currency: str) -> Decimal:
    """Round half away from zero to the currency's minor unit (``ROUND_HALF_UP`` is away from zero)."""
    exponent = CURRENCY_EXPONENTS[currency]
    return amount.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP)


def to_scaled(value: Decimal, scale: int = MONEY_SCALE) -> int:
    """The integer that stores ``value`` at ``scale`` digits; refuses to drop a digit."""
    scaled = value.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {scale} decimal places")
    return int(scaled)


def from_scaled(stored: int, scale: int = MONEY_SCALE) -> Decimal:
    """The exact decimal an integer at ``scale`` stands for, without trailing zeros (``0.3``, never ``0.300000000``)."""
    value = Decimal(stored).scaleb(-scale)
    if value == 0:
        return Decimal(0)
    normalized = value.normalize()
    # normalize() writes 100 as 1E+2; the quantize keeps integers in plain notation.
    if normalized == normalized.to_integral_value():
        return normalized.quantize(Decimal(1))
    return normalized
