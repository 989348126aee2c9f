"""Trading: placing, recovering and listing orders, and reading balances."""
