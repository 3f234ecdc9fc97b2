"""Networks Paydesk watches and the deposit addresses it hands out on them."""
