"""The Moneroo dialect: Bearer keys, the `{success, message, data, errors}` envelope, the
hosted-checkout payments and payouts of the Moneroo API, over the same core."""
