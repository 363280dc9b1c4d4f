"""`tripline-fleet`: drive a simulated fleet against a running Tripline (any deployment whose API
and ingest it can reach), then say which alerts were expected and which arrived.

    tripline-fleet --api http://127.0.0.1:8000 --ingest http://127.0.0.1:8002 \\
        --login demo@tripline.dev:tripline-demo-password --devices 3 --trips 0

Exit code: 0 when every channel (the API's list, SSE, WebSocket, webhooks) holds exactly the
expected alerts, 1 when one differs, 2 on a usage error. SIGINT or SIGTERM stops the fleet
cleanly: uploads stop, its active trips are completed, the report is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from tripline_devstack.fleet.client import FleetHTTPError
from tripline_devstack.fleet.expectations import Rules
from tripline_devstack.fleet.run import FleetConfig, run_fleet


def parse_args(argv: list[str] | None = None) -> FleetConfig:
    """The command line (and FLEET_LOGIN from the environment) as a `FleetConfig`."""
    parser = argparse.ArgumentParser(prog="tripline-fleet", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--api", default="http://127.0.0.1:8000", help="the public API's base URL")
    add("--ingest", default="http://127.0.0.1:8002", help="ingest's base URL")
    add("--devices", type=int, default=3, help="simulated devices (default 3, at most 200)")
    add("--users", type=int, default=1, help="users to sign up (needs --mailbox-port)")
    add(
        "--login",
        action="append",
        default=[],
        metavar="EMAIL:PASSWORD",
        help="use an existing account instead of signing up (repeatable; or FLEET_LOGIN)",
    )
    add("--mailbox-port", type=int, help="run an SMTP server here for the sign-up mail")
    add("--trips", type=int, default=1, help="trips per device; 0 drives until stopped")
    add("--seed", type=int, default=1, help="the same seed drives the same routes")
    add("--time-scale", type=float, default=1.0, help="device seconds per real second")
    add("--batch-fixes", type=int, default=5, help="fixes per upload (one fix a second)")
    add("--legs", type=int, default=3, help="straight runs per route")
    add("--speed-limit", type=float, default=50.0, help="each trip's limit, km/h")
    add("--corridor", type=float, default=60.0, help="each trip's corridor width, m")
    add("--alert-window", type=int, default=300, help="the worker's ALERT_WINDOW_SECONDS")
    add("--late-grace", type=int, default=300, help="the worker's LATE_GRACE_SECONDS")
    add("--lost-signal-after", type=int, default=600, help="the worker's LOST_SIGNAL_AFTER_SECONDS")
    add("--pause", type=float, default=20.0, help="seconds a device rests between trips")
    add(
        "--no-wait",
        action="store_true",
        help="upload without waiting for the last batch to be processed (a lagging worker may "
        "then judge batches out of order, and differ from the expectations)",
    )
    add("--webhook-port", type=int, help="the webhook receiver's port (default: a free one)")
    add("--webhook-host", default="127.0.0.1", help="the address the receiver listens on")
    add("--webhook-base-url", help="how the deployment reaches the receiver")
    add("--webhook-log", type=Path, help="append each delivery received here (JSON lines)")
    add("--settle", type=float, default=30.0, help="seconds to wait for late alerts at the end")
    add("--summary-every", type=float, default=30.0, help="seconds between summary lines")
    add("--report", type=Path, help="write the report here (JSON)")
    args = parser.parse_args(argv)

    logins = list(args.login)
    if not logins and os.environ.get("FLEET_LOGIN"):
        logins = [os.environ["FLEET_LOGIN"]]
    accounts = []
    for login in logins:
        email, sep, password = login.partition(":")
        if not sep or not email or not password:
            parser.error(f"--login wants EMAIL:PASSWORD, not {login!r}")
        accounts.append((email, password))
    if not accounts and args.mailbox_port is None:
        parser.error("give --login EMAIL:PASSWORD, or --mailbox-port to sign users up")
    if not 1 <= args.devices <= 200 or args.users < 1 or args.time_scale <= 0:
        parser.error("--devices 1 to 200, --users at least 1, --time-scale above 0")
    return FleetConfig(
        api_url=args.api.rstrip("/"),
        ingest_url=args.ingest.rstrip("/"),
        devices=args.devices,
        users=args.users,
        logins=tuple(accounts),
        mailbox_port=args.mailbox_port,
        trips_per_device=args.trips,
        seed=args.seed,
        time_scale=args.time_scale,
        batch_fixes=args.batch_fixes,
        legs=args.legs,
        speed_limit_kmh=args.speed_limit,
        corridor_m=args.corridor,
        rules=Rules(args.alert_window, args.late_grace, args.lost_signal_after),
        pause_between_trips_s=args.pause,
        in_order=not args.no_wait,
        webhook_port=args.webhook_port,
        webhook_host=args.webhook_host,
        webhook_base_url=args.webhook_base_url,
        webhook_log=args.webhook_log,
        settle_s=args.settle,
        summary_every_s=args.summary_every,
        report_path=args.report,
    )


async def _main(config: FleetConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, stop.set)
    try:
        report = await run_fleet(config, stop, log=lambda line: print(line, flush=True))
    except FleetHTTPError as error:  # the deployment refused to set the fleet up
        print(f"tripline-fleet: {error}", file=sys.stderr, flush=True)
        return 1
    return 0 if report.matches else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of `tripline-fleet`."""
    return asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
