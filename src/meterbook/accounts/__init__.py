"""Organizations, accounts and subaccounts, projects, API keys, and the reach rule that bounds every key."""
