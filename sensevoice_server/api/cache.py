"""Result-cache statistics (open, like /metrics) and clearing it (behind the API key)."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from sensevoice_server.api.auth import require_api_key
from sensevoice_server.api.deps import TranscriberDep
from sensevoice_server.api.schemas import ERROR_RESPONSES
from sensevoice_server.errors import StoreUnavailable

router = APIRouter(prefix="/cache", tags=["cache"])


class CacheStatsOut(BaseModel):
    store: str = Field(examples=["sqlite"])
    hits: int
    misses: int
    hit_rate: float = Field(description="hits / (hits + misses) since the process started.")
    entries: int | None = Field(description="None while the store cannot be reached.")
    bytes: int | None
    errors: int = Field(description="Store failures served as misses.")
    coalesced: int = Field(description="Requests that waited for an identical one.")


class CacheClearedOut(BaseModel):
    removed: int


@router.get("/stats", summary="Result-cache statistics", response_model=CacheStatsOut)
async def cache_stats(transcriber: TranscriberDep) -> dict[str, Any]:
    return await to_thread.run_sync(transcriber.cache.stats)  # Redis stats scan: off the loop


@router.delete(
    "",
    summary="Remove every cached transcript",
    response_model=CacheClearedOut,
    responses={401: ERROR_RESPONSES[401], 503: {"description": "The store cannot be reached"}},
    dependencies=[Depends(require_api_key)],
)
async def clear_cache(transcriber: TranscriberDep) -> CacheClearedOut:
    try:
        removed = await to_thread.run_sync(transcriber.cache.clear)
    except Exception as error:
        raise StoreUnavailable(f"The cache store could not be cleared: {error}") from error
    return CacheClearedOut(removed=removed)
