"""Deposits: transfers seen on a chain, credited to the merchant exactly once."""
