"""Staff: the accounts that sign in to the console, and the audit log of what they did."""
