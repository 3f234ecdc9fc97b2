"""Hosted pages: what a payer sees in the browser."""
