"""Alert rules (pure) and raising alerts: stored once, published, handed to webhooks."""
