"""Who may ask, what it may cost, and what it cost: keys, plans, limits, accounting, ledger, state."""
