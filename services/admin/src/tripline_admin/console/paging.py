"""Pagination of the console's tables, on the shared helper (`tripline_common.web.pagination`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from tripline_common.web import Page, PageParams, PageResult, SortSpec, page_params

PAGE_SIZE = 25
TOTAL_CAP = 10_000
"""A table's total counts at most this many rows ("more than 10000 jobs" beyond): a page load
never counts a whole large table."""


def console_page_params(spec: SortSpec, page_model: type[Page[Any]]) -> Any:
    """The shared pagination dependency, with the console's page size."""
    return page_params(spec, page_model, default_limit=PAGE_SIZE)


def counted(page: PageParams) -> PageParams:
    """The same page, also counting the matching rows up to `TOTAL_CAP` (the tables show a
    total)."""
    return dataclasses.replace(page, include_total=True, total_cap=TOTAL_CAP)


@dataclass(frozen=True)
class Pager:
    """Links to the neighbouring pages of a table (cursors: stable while rows change)."""

    next_url: str | None
    prev_url: str | None
    total: int | None
    total_capped: bool
    """More rows match than were counted: `total` is the cap."""
    shown: int

    @classmethod
    def of(cls, request: Request, result: PageResult[Any]) -> Pager:
        """The pager of `result`, keeping the request's filters in the links."""
        base = request.url.remove_query_params(["cursor", "offset"])

        def link(cursor: str | None) -> str | None:
            if cursor is None:
                return None
            url = base.include_query_params(cursor=cursor)
            return f"{url.path}?{url.query}"

        return cls(
            next_url=link(result.next_cursor),
            prev_url=link(result.prev_cursor),
            total=result.total,
            total_capped=result.total_capped,
            shown=len(result.rows),
        )
