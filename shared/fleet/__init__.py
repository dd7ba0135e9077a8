"""The fleet: live workers, accounts, lanes, conversation affinity, and how it is shown."""
