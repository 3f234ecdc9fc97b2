"""Payouts: money leaving a merchant's balance for an address on chain."""
