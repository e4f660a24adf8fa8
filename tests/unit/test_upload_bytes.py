"""The upload-bytes budget (admission.py): what fits, what is refused, and what is given back.

The middleware in api/admission.py holds each transcription request's bytes in it; these are
its rules, checked without a server (tests/e2e/test_upload_memory.py runs them for real).
"""

from __future__ import annotations

import pytest

from sensevoice_server.admission import Admission
from sensevoice_server.errors import Busy

MB = 1_000_000


def budget(max_mb: int) -> Admission:
    return Admission(max_jobs=4, max_audio_s=60, decode_concurrency=1, max_upload_bytes=max_mb * MB)


def test_uploads_are_let_in_while_their_bytes_fit_and_refused_after() -> None:
    admission = budget(100)
    first, second = admission.hold_bytes(60 * MB), admission.hold_bytes(40 * MB)
    assert admission.upload_bytes == 100 * MB
    with pytest.raises(Busy, match="100 MB of uploads are already in progress") as refused:
        admission.hold_bytes(1 * MB)
    assert refused.value.status == 429 and refused.value.retry_after >= 1
    first.release()
    first.release()  # given back once, however often it is called
    assert admission.upload_bytes == 40 * MB
    admission.hold_bytes(60 * MB)
    second.release()


def test_one_upload_alone_is_let_in_even_past_the_budget() -> None:
    """Or a batch bigger than the whole budget could never be sent at all."""
    admission = budget(100)
    alone = admission.hold_bytes(150 * MB)
    with pytest.raises(Busy):
        admission.hold_bytes(0)  # and nothing beside it
    alone.release()
    assert admission.upload_bytes == 0


def test_a_chunked_upload_grows_until_it_no_longer_fits() -> None:
    admission = budget(100)
    other = admission.hold_bytes(70 * MB)
    chunked = admission.hold_bytes(0)
    chunked.grow_to(20 * MB)
    chunked.grow_to(10 * MB)  # never shrinks
    assert admission.upload_bytes == 90 * MB
    with pytest.raises(Busy):
        chunked.grow_to(31 * MB)
    assert admission.upload_bytes == 90 * MB  # a refused growth holds nothing more
    other.release()
    chunked.grow_to(100 * MB)  # alone now
    chunked.release()
    assert admission.upload_bytes == 0
