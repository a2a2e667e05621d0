"""The one listing reader: every page of `GET /workflows`, through the repeat guard of
core/paging, for the client and for doctor's probe alike.

`fetch(params)` sends one page's request and returns the body and its list under "data" (it
raises what its caller wants raised for a failed or malformed answer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from migrator.core.paging import MAX_PAGES, ListingWalk, Page, page_params, too_many_pages

Fetch = Callable[[dict[str, str]], Awaitable[tuple[Mapping[str, Any], list[Any]]]]


async def read_pages(fetch: Fetch, name: str | None = None) -> AsyncIterator[Page]:
    """Page after page until one is empty or offers no next page; ListingStopped when the
    pagination loops (after the first page that brings nothing new) or never ends. Pages are
    asked for by number, so a `next_page` that repeats is no loop of ours: only its presence
    is read."""
    walk = ListingWalk()
    for number in range(1, MAX_PAGES + 1):
        body, data = await fetch(page_params(number, name))
        page = walk.take(number, body, data)
        yield page
        if not page.next_page:
            return
    raise too_many_pages()
