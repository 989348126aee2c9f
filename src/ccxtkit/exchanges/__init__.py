"""Exchange clients: the ccxt gateway and the paper exchange, behind one interface."""
