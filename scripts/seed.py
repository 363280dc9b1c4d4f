"""Load demo data for local development: users, a device with a known key, a planned trip.

Idempotent (run it as often as you like) and refused outside dev and test.
Reads DATABASE_URL like every process; `make dev` runs it after the migrations.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import col

from tripline_common.data import create_engine, create_session_factory, unit_of_work
from tripline_common.data.models import Device, Trip, User, UserRole, Waypoint
from tripline_common.platform import CommonSettings
from tripline_common.security import KEY_PREFIX, hash_api_key, hash_password

# Known credentials, printed by `make dev`. Dev data only: the script refuses staging and prod.
DEMO_PASSWORD = "tripline-demo-password"  # noqa: S105
DEMO_DEVICE_KEY = KEY_PREFIX + "demo-device-key-for-local-development-only"
DEMO_USERS = [
    ("demo@tripline.dev", "Demo User", UserRole.USER),
    ("operator@tripline.dev", "Demo Operator", UserRole.OPERATOR),
    ("admin@tripline.dev", "Demo Admin", UserRole.ADMIN),
]


async def seed(settings: CommonSettings) -> None:
    """Insert what is missing of the demo data set."""
    engine = create_engine(settings)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            users: dict[str, User] = {}
            for email, name, role in DEMO_USERS:
                user = await session.scalar(select(User).where(func.lower(User.email) == email))
                if user is None:
                    user = User(
                        email=email,
                        display_name=name,
                        role=role,
                        password_hash=await hash_password(DEMO_PASSWORD),
                        email_verified_at=datetime.now(UTC),
                    )
                    session.add(user)
                users[email] = user
            await session.flush()

            owner = users["demo@tripline.dev"]
            device = await session.scalar(
                select(Device).where(col(Device.api_key_hash) == hash_api_key(DEMO_DEVICE_KEY))
            )
            if device is None:
                device = Device(
                    owner_id=owner.id,
                    name="Demo van",
                    api_key_prefix=DEMO_DEVICE_KEY[:11],
                    api_key_hash=hash_api_key(DEMO_DEVICE_KEY),
                )
                session.add(device)
                await session.flush()

            has_trip = await session.scalar(
                select(col(Trip.id)).where(col(Trip.owner_id) == owner.id)
            )
            if has_trip is None:
                start = datetime.now(UTC) + timedelta(hours=1)
                trip = Trip(
                    owner_id=owner.id,
                    device_id=device.id,
                    name="Berlin → Potsdam delivery",
                    origin_lat=52.5200,
                    origin_lon=13.4050,
                    destination_lat=52.3906,
                    destination_lon=13.0645,
                    planned_start=start,
                    planned_arrival=start + timedelta(minutes=50),
                    speed_limit_kmh=80,
                    corridor_m=500,
                )
                session.add(trip)
                await session.flush()
                for seq, (lat, lon, name) in enumerate(
                    [
                        (52.5200, 13.4050, "Depot"),
                        (52.4560, 13.2900, "Wannsee"),
                        (52.3906, 13.0645, "Potsdam"),
                    ]
                ):
                    session.add(Waypoint(trip_id=trip.id, seq=seq, lat=lat, lon=lon, name=name))
    finally:
        await engine.dispose()


def main() -> int:
    settings = CommonSettings(service_name="seed")
    if settings.is_production_like:
        print(f"seed: refusing to load demo data in {settings.environment.value}", file=sys.stderr)
        return 2
    asyncio.run(seed(settings))
    print("seed: demo data present (users demo@, operator@, admin@tripline.dev)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
