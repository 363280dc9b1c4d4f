"""A failing statement's error names the SQL but not the values bound to it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tripline_common.data import create_engine
from tripline_common.platform import CommonSettings

VALUE = "tl_secret-device-key-in-a-parameter"


@pytest.mark.parametrize(("echo", "shown"), [(False, False), (True, True)])
async def test_a_failed_statements_error_hides_its_parameters_unless_echo_is_on(
    make_settings: Any, echo: bool, shown: bool
) -> None:
    settings: CommonSettings = make_settings(db_echo=echo)
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as failure:
                await conn.execute(text("SELECT length(:value) / 0"), {"value": VALUE})
    finally:
        await engine.dispose()
    message = str(failure.value)
    assert "SELECT length" in message  # The statement is named...
    assert (VALUE in message) is shown  # ...its values only when DB_ECHO asks for them.
