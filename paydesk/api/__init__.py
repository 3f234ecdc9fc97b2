"""The public API dialects: thin translations over the same services."""
