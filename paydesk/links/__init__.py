"""Payment links: invoices a merchant makes from the dashboard, shared as a link and a QR
code instead of through the API."""
