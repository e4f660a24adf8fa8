"""The UI's Live tab: microphone audio streamed into a LiveSession, captions as they come.

It runs the same session logic as `WS /ws/transcribe`, opened the same way
(`LiveSessions.open`): Gradio's stream event hands over the microphone's audio every half
second, the session cuts and decodes it, and each call shows what is ready: final lines
with their tags, then the open utterance's partial text. A session spans many Gradio calls,
so the `open` context is held in an AsyncExitStack kept with the browser session's state.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np

from sensevoice_server.errors import StreamError
from sensevoice_server.live import Final, LiveSession, LiveSessions, Partial, drain
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.ui.downloads import button_updates, download_buttons
from sensevoice_server.ui.transcribe import itn_checkbox, language_dropdown

log = logging.getLogger(__name__)

MAX_LINES = 500  # captions kept per browser session


@dataclass(eq=False)
class Captions:
    """One browser session's captions, and its LiveSession while the microphone is on."""

    lines: list[str] = field(default_factory=list)
    partial: str = ""
    session: LiveSession | None = None
    stack: AsyncExitStack | None = None
    sample_rate: int = 0
    last_seen: float = 0.0
    reaper: asyncio.Task[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def render(self) -> str:
        lines = self.lines[-MAX_LINES:]
        return "\n".join([*lines, f"… {self.partial}"] if self.partial else lines)


def caption_line(final: Final) -> str:
    """`[0.2–2.7 s] en neutral Laughter  text`: a final with its tags."""
    tags = " ".join(filter(None, [final.language, final.emotion, *final.events]))
    return f"[{final.start:.1f}–{final.end:.1f} s] {tags}  {final.rich or final.text}".rstrip()


def mono_float(data: np.ndarray) -> np.ndarray:
    """Gradio's microphone chunk (int16, maybe (n, channels)) to mono float32 in [-1, 1]."""
    samples = np.asarray(data)
    if np.issubdtype(samples.dtype, np.integer):
        scale = float(np.iinfo(samples.dtype).max) + 1.0
        samples = samples.astype(np.float32) / scale
    samples = samples.astype(np.float32, copy=False)
    return samples.mean(axis=1) if samples.ndim == 2 else samples.reshape(-1)


class LiveTab:
    """The Live tab's event handlers; kept apart from the components so tests can call them."""

    def __init__(self, sessions: LiveSessions, idle_s: float) -> None:
        self.sessions = sessions
        self.idle_s = idle_s
        self._closing: set[asyncio.Task[None]] = set()

    async def on_chunk(
        self,
        chunk: tuple[int, np.ndarray] | None,
        language: str,
        use_itn: bool,
        captions: Captions | None,
    ) -> tuple[str, Captions]:
        captions = captions or Captions()
        if chunk is None:
            return captions.render(), captions
        rate, data = chunk
        try:
            if captions.session is None:
                options = DecodeOptions(language=language, use_itn=use_itn, word_timestamps=True)
                await self._open(captions, rate, options)
            elif rate != captions.sample_rate:
                raise StreamError("The microphone's sample rate changed; start again.")
            assert captions.session is not None
            captions.last_seen = asyncio.get_running_loop().time()
            await captions.session.feed(mono_float(data))
            self._show(captions)
        except StreamError as error:
            await self.close(captions)
            raise gr.Error(error.message) from error
        return captions.render(), captions

    async def on_stop(self, captions: Captions | None) -> tuple[Any, ...]:
        """The microphone stopped: close the open utterance, show every final, and offer
        the session's transcript as files."""
        captions = captions or Captions()
        heard = None
        if captions.session is not None:
            await captions.session.finish()
            self._show(captions)
            heard = captions.session.transcript()
            await self.close(captions)
        captions.partial = ""
        buttons = button_updates(heard, "live-transcript")
        return captions.render(), captions, *buttons

    def on_clear(self, captions: Captions | None) -> tuple[str, Captions]:
        captions = captions or Captions()
        captions.lines.clear()
        captions.partial = ""
        return "", captions

    def discard(self, captions: Captions | None) -> None:
        """gr.State's delete_callback (maybe on another thread): free a forgotten session."""
        if captions is not None and captions.session is not None and captions.loop is not None:
            captions.loop.call_soon_threadsafe(self._close_soon, captions)

    async def _open(self, captions: Captions, rate: int, options: DecodeOptions) -> None:
        stack = AsyncExitStack()
        captions.session = await stack.enter_async_context(
            self.sessions.open(options, sample_rate=rate)
        )
        captions.stack, captions.sample_rate = stack, rate
        captions.loop = asyncio.get_running_loop()
        captions.last_seen = captions.loop.time()
        # Gradio keeps a closed tab's state for an hour; without audio we let go sooner.
        captions.reaper = asyncio.create_task(self._reap_when_idle(captions))

    def _show(self, captions: Captions) -> None:
        assert captions.session is not None
        for event in drain(captions.session):
            if isinstance(event, Partial):
                captions.partial = event.text
            elif isinstance(event, Final):
                captions.lines.append(caption_line(event))
                captions.partial = ""
            elif isinstance(event, StreamError):
                raise event
        del captions.lines[:-MAX_LINES]

    async def close(self, captions: Captions) -> None:
        stack, reaper = captions.stack, captions.reaper
        captions.session = captions.stack = captions.reaper = None
        if reaper is not None and reaper is not asyncio.current_task():
            reaper.cancel()
        if stack is not None:
            await stack.aclose()

    def _close_soon(self, captions: Captions) -> None:
        task = asyncio.ensure_future(self.close(captions))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _reap_when_idle(self, captions: Captions) -> None:
        loop = asyncio.get_running_loop()
        while captions.session is not None:
            idle = loop.time() - captions.last_seen
            if idle >= self.idle_s:
                log.info("live tab: no audio for %.0f s; closing the session", idle)
                await self.close(captions)
                return
            await asyncio.sleep(self.idle_s - idle)


def build_live_tab(sessions: LiveSessions, settings: Settings) -> LiveTab:
    """Add the Live tab's components and events to the gr.Blocks being built."""
    tab = LiveTab(sessions, settings.live_idle_timeout_s)
    with gr.Row():
        with gr.Column(scale=1):
            microphone = gr.Audio(
                sources=["microphone"], streaming=True, type="numpy", label="Microphone",
                elem_id="live-microphone",
            )  # fmt: skip
            language = language_dropdown()
            use_itn = itn_checkbox()
            clear = gr.Button("Clear captions")
        with gr.Column(scale=2):
            text = gr.Textbox(
                label="Live captions", lines=14, max_lines=30, autoscroll=True,
                elem_id="live-captions", buttons=["copy"],
            )  # fmt: skip
            with gr.Row():
                downloads = download_buttons("live-download")
    captions = gr.State(None, delete_callback=tab.discard)
    microphone.stream(
        tab.on_chunk,
        [microphone, language, use_itn, captions],
        [text, captions],
        stream_every=0.5,
        time_limit=int(settings.live_max_session_s),
        concurrency_limit=None,  # quick (no waiting for the model); bounded by live sessions
        show_progress="hidden",
        api_visibility="private",
    )
    microphone.stop_recording(
        tab.on_stop, [captions], [text, captions, *downloads], api_visibility="private"
    )
    clear.click(tab.on_clear, [captions], [text, captions], api_visibility="private")
    return tab
