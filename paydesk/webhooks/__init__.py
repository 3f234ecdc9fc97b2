"""Webhook events: written with the change they announce (transactional outbox)."""
