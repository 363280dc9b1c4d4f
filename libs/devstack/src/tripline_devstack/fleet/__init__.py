"""The fleet simulator: simulated devices driving road-like routes around a city, their users
planning trips and listening for alerts, all through Tripline's public HTTP interfaces; it
knows what it sent, so it says which alerts must be raised and whether they arrived.

    from tripline_devstack.fleet import FleetConfig, run_fleet

    report = await run_fleet(FleetConfig(devices=3, logins=(("demo@tripline.dev", pw),)))
    assert report.matches

The command is `tripline-fleet` (`tripline_devstack.fleet.cli`); docs/fleet.md tells more.
"""

from tripline_devstack.fleet.driving import Mischief, TripPlan, mischief_for, plan_trip
from tripline_devstack.fleet.expectations import AlertKey, Rules, TripRecord, expected_alerts
from tripline_devstack.fleet.report import FleetReport, Traffic
from tripline_devstack.fleet.run import Fleet, FleetConfig, run_fleet

__all__ = [
    "AlertKey",
    "Fleet",
    "FleetConfig",
    "FleetReport",
    "Mischief",
    "Rules",
    "Traffic",
    "TripPlan",
    "TripRecord",
    "expected_alerts",
    "mischief_for",
    "plan_trip",
    "run_fleet",
]
