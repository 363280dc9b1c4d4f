"""Files of a trip: waypoint imports (CSV/GPX upload -> job) and the telemetry CSV export."""
