"""The hash-chained DuckDB ledger."""
