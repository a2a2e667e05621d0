"""Reading `GET /workflows` page by page: what each page adds, when to stop, when the server's
pagination loops.

Pure: the client and doctor's probe fetch the pages (zuora/listing.py drives the walk); this
decides. One entry listed again (a definition created while paging shifts one onto the next page)
is left out; a page that brings nothing but entries already listed means the pagination loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

PAGE_LENGTH = 50  # the documented maximum for GET /workflows
MAX_PAGES = 10_000  # 500,000 definitions: a server that never stops paging is a bug


class ListingStopped(Exception):
    """Raised when a listing cannot be read to its end: the pagination loops, or never ends."""


def listing_key(entry: Any) -> Any:
    """What makes a `GET /workflows` entry the same as another: its id, else all of it (an
    entry whose id is null, a string or a float is still told apart from the others)."""
    if isinstance(entry, dict):
        value = entry.get("id")
        if type(value) is int:
            return value
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


def page_params(page: int, name: str | None = None) -> dict[str, str]:
    """The query of page `page` (1-based), with the server's name filter when given."""
    params = {"page": str(page), "page_length": str(PAGE_LENGTH)}
    if name is not None:
        params["name"] = name
    return params


@dataclass(frozen=True, slots=True)
class Page:
    """One page read: its number, every entry it carried, the ones not listed before, and
    whether it offered another page."""

    number: int
    data: list[Any]
    fresh: list[Any]
    next_page: bool


@dataclass
class ListingWalk:
    """The state of one walk over the pages: which entries were listed already."""

    seen: set[Any] = field(default_factory=set)
    pages: int = 0

    def take(self, number: int, body: Mapping[str, Any], data: list[Any]) -> Page:
        """Account for page `number` (`data` is its list under "data"); ListingStopped when it
        lists only entries already listed."""
        fresh = [e for e in data if listing_key(e) not in self.seen]
        if data and not fresh:
            raise ListingStopped(
                f"page {number} lists only workflows already listed; the server's pagination"
                " loops, stopped"
            )
        self.seen.update(listing_key(e) for e in fresh)
        self.pages += 1
        pagination = body.get("pagination")
        next_page = pagination.get("next_page") if isinstance(pagination, dict) else None
        return Page(number, data, fresh, bool(data) and bool(next_page))


def too_many_pages() -> ListingStopped:
    return ListingStopped(f"more than {MAX_PAGES} pages")
