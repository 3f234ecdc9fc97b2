"""A merchant's standing discount or surcharge per coin and network (spec section 10)."""
