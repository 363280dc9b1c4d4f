"""`Stoppable`: something running that `stop()` ends and that a `with` block stops on exit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Stoppable(ABC):
    """`with x:` stops `x` when the block ends, however it ends."""

    @abstractmethod
    def stop(self) -> None:
        """Stop what runs; safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
