"""Pagination of the console's tables, on the shared helper (`tripline_common.web.pagination`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from tripline_common.web import Page, PageParams, PageResult, SortSpec, page_params

PAGE_SIZE = 25


def console_page_params(spec: SortSpec, page_model: type[Page[Any]]) -> Any:
    """The shared pagination dependency, with the console's page size."""
    return page_params(spec, page_model, default_limit=PAGE_SIZE)


def counted(page: PageParams) -> PageParams:
    """The same page, also counting every matching row (the tables show a total)."""
    return dataclasses.replace(page, include_total=True)


@dataclass(frozen=True)
class Pager:
    """Links to the neighbouring pages of a table (cursors: stable while rows change)."""

    next_url: str | None
    prev_url: str | None
    total: int | None
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
            shown=len(result.rows),
        )
