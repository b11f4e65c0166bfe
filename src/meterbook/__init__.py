"""meterbook: self-hosted usage metering and billing."""

__version__ = "0.1.0"
__all__ = ["__version__"]
