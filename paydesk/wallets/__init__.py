"""Static wallets: a permanent deposit address per customer, every top-up credited."""
