"""Processing telemetry batches: attach to the active trip, advance it, evaluate the rules."""
