"""Features: quotas with a default limit, per-account overrides, and usage counted against them."""
