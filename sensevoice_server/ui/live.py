"""The UI's Live tab: microphone audio streamed into a LiveStream, captions as they come.

It runs the same live core as `WS /ws/transcribe`, opened the same way (`LiveSessions.open`)
and under the same rules: Gradio's stream event hands over the microphone's audio every half
second, the stream cuts and decodes it, and each call shows what is ready: final lines with
their tags, then the open utterance's partial text. A stream spans many Gradio calls, so the
`open` context is held in an AsyncExitStack kept with the browser session's state.

The event is reachable through Gradio's queue API by anyone who can reach the UI, so a
chunk is checked as the WebSocket checks its config before any work: its sample rate must be
one the WebSocket accepts (a WAV header may claim 10 Hz, which would resample 20 KB into 16
million samples), and its audio must keep the live pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np

from sensevoice_server.errors import BadRequest, StreamError, UnsupportedData
from sensevoice_server.live import Heard, LiveSessions, LiveStream, Preview, Stop, ready_events
from sensevoice_server.live.protocol import SAMPLE_RATES
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.transcript import Transcript
from sensevoice_server.ui.downloads import button_updates, download_buttons
from sensevoice_server.ui.refusals import refused
from sensevoice_server.ui.transcribe import (
    itn_checkbox,
    keywords_box,
    language_dropdown,
    options_of,
)

log = logging.getLogger(__name__)

MAX_LINES = 500  # captions kept per browser session
STOP_GRACE_S = 2.0  # a stopped stream waits this long for the browser to fetch its finals


@dataclass(eq=False)
class Captions:
    """One browser session's captions, and its LiveStream while the microphone is on."""

    lines: list[str] = field(default_factory=list)
    partial: str = ""
    stream: LiveStream | None = None
    stack: AsyncExitStack | None = None
    sample_rate: int = 0
    reaper: asyncio.Task[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def render(self) -> str:
        lines = self.lines[-MAX_LINES:]
        return "\n".join([*lines, f"… {self.partial}"] if self.partial else lines)


def caption_line(heard: Heard) -> str:
    """`[0.2–2.7 s] en neutral Laughter  text`: a final with its tags."""
    tags = " ".join(filter(None, [heard.language, heard.emotion, *heard.events]))
    return f"[{heard.start:.1f}–{heard.end:.1f} s] {tags}  {heard.rich or heard.text}".rstrip()


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

    def __init__(self, sessions: LiveSessions) -> None:
        self.sessions = sessions
        self._closing: set[asyncio.Task[None]] = set()

    async def on_chunk(
        self,
        chunk: tuple[int, np.ndarray] | None,
        language: str,
        use_itn: bool,
        captions: Captions | None,
        keywords: str = "",
    ) -> tuple[str, Captions]:
        captions = captions or Captions()
        if chunk is None:
            return captions.render(), captions
        rate, data = chunk
        try:
            check_sample_rate(rate)  # before any work: the rate decides what a chunk costs
            if captions.stream is None:
                try:
                    options = options_of(language, use_itn, keywords, [])
                except BadRequest as error:
                    raise StreamError(error.message) from error
                await self._open(captions, rate, options)
            elif rate != captions.sample_rate:
                raise StreamError("The microphone's sample rate changed; start again.")
            assert captions.stream is not None
            await captions.stream.feed(mono_float(data))
            self._show(captions)
            return captions.render(), captions
        except Stop as stop:  # the server ends the stream: its finals first, then why
            ending = stop.error
        except StreamError as error:
            await self.close(captions)
            raise refusal(error) from error
        await self._finish(captions)
        gr.Warning(ending.message)
        return captions.render(), captions

    async def on_stop(self, captions: Captions | None) -> tuple[Any, ...]:
        """The microphone stopped: close the open utterance, show every final, and offer
        the session's transcript as files."""
        captions = captions or Captions()
        heard = await self._finish(captions)
        captions.partial = ""
        buttons = button_updates(heard, "live-transcript")
        return captions.render(), captions, *buttons

    def on_clear(self, captions: Captions | None) -> tuple[str, Captions]:
        captions = captions or Captions()
        captions.lines.clear()
        captions.partial = ""
        return "", captions

    def discard(self, captions: Captions | None) -> None:
        """gr.State's delete_callback (maybe on another thread): free a forgotten stream."""
        if captions is not None and captions.stream is not None and captions.loop is not None:
            captions.loop.call_soon_threadsafe(self._close_soon, captions)

    async def _open(self, captions: Captions, rate: int, options: DecodeOptions) -> None:
        stack = AsyncExitStack()
        captions.stream = await stack.enter_async_context(
            self.sessions.open(options, sample_rate=rate)
        )
        captions.stack, captions.sample_rate = stack, rate
        captions.loop = asyncio.get_running_loop()
        # Gradio keeps a closed tab's state for an hour; without audio we let go sooner.
        captions.reaper = asyncio.create_task(self._reap(captions, captions.stream))

    async def _finish(self, captions: Captions) -> Transcript | None:
        """Every final of the stream shown, the stream closed; what it heard, if any."""
        stream = captions.stream
        if stream is None:
            return None
        try:
            await stream.finish()
            self._show(captions)
        except StreamError as error:
            raise refusal(error) from error
        finally:
            await self.close(captions)
        return stream.session.transcript()

    def _show(self, captions: Captions) -> None:
        assert captions.stream is not None
        for event in ready_events(captions.stream.session):
            if isinstance(event, Preview):
                captions.partial = event.text
            elif isinstance(event, Heard):
                captions.lines.append(caption_line(event))
                captions.partial = ""
            elif isinstance(event, StreamError):
                raise event
        del captions.lines[:-MAX_LINES]

    async def close(self, captions: Captions) -> None:
        stack, reaper = captions.stack, captions.reaper
        captions.stream = captions.stack = captions.reaper = None
        if reaper is not None and reaper is not asyncio.current_task():
            reaper.cancel()
        if stack is not None:
            await stack.aclose()

    def _close_soon(self, captions: Captions) -> None:
        task = asyncio.ensure_future(self.close(captions))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _reap(self, captions: Captions, stream: LiveStream) -> None:
        """Close the stream when it goes idle (the live core's rule), or a little while after
        the server stops it (a drain), if no chunk came to show its finals meanwhile."""
        while captions.stream is stream:
            left = stream.idle_left()
            if left <= 0:
                log.info("live tab: too little audio; closing the stream")
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await stream.stopped.wait()
            if stream.stopped.is_set():
                await stream.finish()
                await asyncio.sleep(STOP_GRACE_S)
                break
        if captions.stream is stream:
            await self.close(captions)


def refusal(error: StreamError) -> gr.Error:
    """The stream's error as Gradio shows it: the message is the whole answer, so no
    traceback in the log for what a client did (refusals.py)."""
    return refused(error, "live")


def check_sample_rate(rate: int) -> None:
    """The rates the WebSocket accepts; anything else is refused before any work."""
    if rate not in SAMPLE_RATES:
        raise UnsupportedData(
            f"The microphone's audio comes at {rate} Hz; the Live tab takes "
            f"{', '.join(map(str, SAMPLE_RATES))} Hz.",
            "unsupported_sample_rate",
        )


def build_live_tab(sessions: LiveSessions, settings: Settings) -> LiveTab:
    """Add the Live tab's components and events to the gr.Blocks being built."""
    tab = LiveTab(sessions)
    with gr.Row():
        with gr.Column(scale=1):
            microphone = gr.Audio(
                sources=["microphone"], streaming=True, type="numpy", label="Microphone",
                elem_id="live-microphone",
            )  # fmt: skip
            language = language_dropdown()
            use_itn = itn_checkbox()
            keywords = keywords_box()
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
        [microphone, language, use_itn, captions, keywords],
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
