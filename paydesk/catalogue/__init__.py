"""Currencies, networks and the services (a coin on a network) Paydesk can accept."""
