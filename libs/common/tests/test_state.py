"""The app's typed state: one object per app, reached as the class a service asks through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from tripline_common.web import ServiceState


class OtherServiceState(ServiceState[Any]):
    """A service's own state, which the test app was not built with."""


def test_the_factory_keeps_one_typed_state_per_app(build_app: Callable[..., FastAPI]) -> None:
    first, second = build_app(), build_app(max_body_bytes=1234)

    assert ServiceState.of(first) is not ServiceState.of(second)
    assert ServiceState.of(second).settings.max_body_bytes == 1234
    assert ServiceState.of(first).lifecycle.started is False


def test_asking_for_another_services_state_is_refused(build_app: Callable[..., FastAPI]) -> None:
    with pytest.raises(TypeError, match="not OtherServiceState"):
        OtherServiceState.of(build_app())
