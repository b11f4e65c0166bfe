"""Alerts (CONTRACT §7): thresholds on an account's credits, spend, usage or feature usage, decided at write time."""
