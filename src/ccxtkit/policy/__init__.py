"""Policy: the `risk`, `withdrawals` and `exchanges` sections, recorded in the ledger by hash.

`document` normalises and hashes them, `rules` classifies a change (tighten or loosen),
`service` records the policy and enforces it before any command relies on it.
"""
