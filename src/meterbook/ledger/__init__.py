"""The double-entry ledger of prepaid credits."""
