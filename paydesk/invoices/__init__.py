"""Invoices: pricing, creation, lookup, history and the status lifecycle."""
