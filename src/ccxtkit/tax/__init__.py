"""US tax: lots, disposals, Form 8949 and Schedule D from the ledger."""
