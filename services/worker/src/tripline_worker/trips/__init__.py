"""Trips: progress from telemetry (position, distance, remaining route, ETA) and waypoint files."""
