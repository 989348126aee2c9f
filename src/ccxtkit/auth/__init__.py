"""Second factors: TOTP codes (RFC 6238) for lifting the kill switch and approving withdrawals."""
