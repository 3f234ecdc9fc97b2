"""Exchange rates: providers behind one interface, and the conversions built on them."""
