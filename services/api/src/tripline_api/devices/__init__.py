"""Devices: telemetry sources and their ingest API keys."""
