"""`Idempotency-Key` for create calls of both dialects: a retried request gets the first
response back instead of creating twice."""
