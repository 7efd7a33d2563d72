"""Query parameters as the SDK writes them: time bounds in brackets (`created_at[gte]`), lists with `[]`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query

CreatedAfter = Annotated[datetime | None, Query(alias="created_at[gt]")]
CreatedFrom = Annotated[datetime | None, Query(alias="created_at[gte]")]
CreatedBefore = Annotated[datetime | None, Query(alias="created_at[lt]")]
CreatedTo = Annotated[datetime | None, Query(alias="created_at[lte]")]
Page = Annotated[str | None, Query(max_length=1024, description="next_page of the previous page")]
