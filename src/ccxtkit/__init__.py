"""vhc: trading controls for a small company, over ccxt, with a hash-chained DuckDB ledger."""

__version__ = "0.1.0"
