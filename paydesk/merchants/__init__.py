"""Users, their merchants (projects) and the merchants' API keys."""
