"""Alerts: what the worker raised on your trips, and how you handle them."""
