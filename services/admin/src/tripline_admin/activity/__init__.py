"""The system's recent activity over time: what the console's overview charts draw."""
