"""Billing runs, invoices and their lines, the settling of invoices by payments, the billing history."""
