"""Trips as operators see them: one trip with its route, the positions received and its alerts."""
