"""Pre-trade risk limits, the kill switch and the circuit breaker."""
