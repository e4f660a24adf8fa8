"""OpenAI Realtime's transcription events, as this server sends them (GA shape).

Each function returns one server event as a dict in the shape of the openai SDK's
`openai.types.realtime` models (the tests validate every frame against its
`RealtimeServerEvent`). Dicts rather than the SDK's models: the models drop an explicit
`turn_detection: null` (manual commits), which a client must be able to read back.
"""

from __future__ import annotations

import secrets
from typing import Any

from sensevoice_server.formats import logprob_item, speaker_name
from sensevoice_server.live.results import Heard
from sensevoice_server.transcript import Transcript

Event = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def event(kind: str, **fields: Any) -> Event:
    return {"type": kind, "event_id": new_id("event"), **fields}


def error(message: str, code: str, *, kind: str = "invalid_request_error",
          param: str | None = None, client_event_id: str | None = None) -> Event:  # fmt: skip
    """OpenAI's error event: the session goes on unless the server closes it after."""
    detail = {"type": kind, "code": code, "message": message, "param": param,
              "event_id": client_event_id}  # fmt: skip
    return event("error", error={k: v for k, v in detail.items() if v is not None})


def user_item(item_id: str, transcript: str | None) -> Event:
    """The conversation item a committed stretch of audio becomes."""
    content = {"type": "input_audio", "transcript": transcript}
    return {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
            "status": "completed", "content": [content]}  # fmt: skip


def committed(item_id: str, previous: str | None) -> list[Event]:
    """The buffer's audio became an item: committed, then the item added (no text yet)."""
    return [
        event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous),
        event("conversation.item.added", item=user_item(item_id, None), previous_item_id=previous),
    ]


def delta(item_id: str, text: str) -> Event:
    return event("conversation.item.input_audio_transcription.delta", item_id=item_id,
                 content_index=0, delta=text)  # fmt: skip


def transcribed(item_id: str, last_delta: str, transcript: str, seconds: float,
                extras: dict[str, Any]) -> list[Event]:  # fmt: skip
    """The item's last delta (the deltas of an item concatenate to its transcript), the
    completed transcript with SenseVoice's language, emotion and events as extra fields, and
    the item done."""
    usage = {"type": "duration", "seconds": round(seconds, 3)}
    completed = event("conversation.item.input_audio_transcription.completed",
                      item_id=item_id, content_index=0, transcript=transcript, usage=usage,
                      **extras)  # fmt: skip
    done = event("conversation.item.done", item=user_item(item_id, transcript))
    return [*([delta(item_id, last_delta)] if last_delta else []), completed, done]


def extras_of(heard: Heard, logprobs: bool) -> dict[str, Any]:
    """What SenseVoice hears besides the words; OpenAI's `languages` has no place for an
    emotion or an event, so they travel as fields of their own. Logprobs when the session's
    include asked for them."""
    extras: dict[str, Any] = {"language": heard.language, "emotion": heard.emotion,
                              "events": heard.events}  # fmt: skip
    if logprobs:
        scores = heard.said.logprobs if heard.said else []
        extras["logprobs"] = [logprob_item(s.token, s.logprob) for s in scores]
    return extras


def speaker_segments(item_id: str, transcript: Transcript, offset: float = 0.0) -> list[Event]:
    """With speaker labels on, each segment of an item with its speaker (OpenAI's `.segment`
    event, as its diarizing model sends them before the item completes), in seconds of the
    item's audio (`offset`: where the item starts in the segments' time)."""
    return [
        event("conversation.item.input_audio_transcription.segment", item_id=item_id,
              content_index=0, id=new_id("seg"), start=round(segment.start - offset, 3),
              end=round(segment.end - offset, 3), text=segment.text,
              speaker=speaker_name(segment.speaker))
        for segment in transcript.segments
        if segment.speaker is not None
    ]  # fmt: skip
