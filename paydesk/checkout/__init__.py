"""Hosted checkout payments (the Moneroo "Standard" flow): a payment initialized by the
merchant's server, paid by the customer on a hosted page with a method (crypto, mobile
money, the sandbox's test method), verified by the merchant."""
