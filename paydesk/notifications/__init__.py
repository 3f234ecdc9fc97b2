"""Emails: an outbox written in the transaction of the change they tell about, sent by a
worker over SMTP (or written to the log when no SMTP server is configured)."""
