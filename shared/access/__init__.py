"""Who may use the fleet and how much: client keys, quotas, the usage ledger."""
