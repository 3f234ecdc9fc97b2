"""The double-entry ledger every balance comes from."""
