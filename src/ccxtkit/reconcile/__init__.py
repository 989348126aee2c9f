"""Reconciliation: prove the ledger and the exchanges agree, and say exactly where they don't."""
