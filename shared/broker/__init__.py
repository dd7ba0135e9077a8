"""Redis as the fleet's broker: connections, key names, riding out outages."""
