"""Withdrawals: allowlist, approvals with 2FA, policy caps, and sending each one exactly once."""
