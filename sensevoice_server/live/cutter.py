"""Cut a live stream into utterances: online VAD plus the rules that make cuts repeatable.

`UtteranceCutter` knows nothing of decoding: audio goes in, closed utterances come out (with
the samples to decode), and the open utterance can be read for a partial result. Cuts depend
only on the audio, never on how the client chunked it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from anyio import to_thread

from sensevoice_server.live.audio import AudioBuffer, Resampler
from sensevoice_server.live.vad import SPEECH_PAD_MS, OnlineVad
from sensevoice_server.pcm import SAMPLE_RATE

PREROLL = (
    SAMPLE_RATE // 2
)  # audio kept while silent: silero reports a start up to pad + window late
MIN_UTTERANCE = SAMPLE_RATE // 10  # shorter utterances are dropped


@dataclass(frozen=True)
class Utterance:
    """The open utterance: its number and first sample."""

    segment: int
    start: int


@dataclass(frozen=True)
class Closed:
    """A closed utterance, ready for its final decode."""

    segment: int
    start: int
    end: int
    audio: np.ndarray


class UtteranceCutter:
    """Audio at any supported rate in, `Closed` utterances out, numbered from `first_segment`."""

    def __init__(
        self,
        *,
        sample_rate: int,
        first_segment: int,
        vad_threshold: float,
        end_silence_ms: int,
        max_utterance_s: float,
        speech_pad_ms: int = SPEECH_PAD_MS,
    ) -> None:
        self._resample = Resampler(sample_rate) if sample_rate != SAMPLE_RATE else None
        self._vad_settings = (vad_threshold, end_silence_ms, speech_pad_ms)
        self._max_utterance = int(max_utterance_s * SAMPLE_RATE)
        self._vad: OnlineVad | None = None
        self._audio = AudioBuffer()
        self._closed: list[Closed] = []
        self.open: Utterance | None = None
        self.next_segment = first_segment
        self.quiet_since = 0  # the sample where the last utterance closed (0: none yet)

    @property
    def end(self) -> int:
        """Samples (at 16 kHz) taken so far."""
        return self._audio.end

    def open_audio(self) -> np.ndarray:
        """The open utterance's samples so far (empty when none is open)."""
        if self.open is None:
            return np.zeros(0, dtype=np.float32)
        return self._audio.slice(self.open.start, self._audio.end)

    async def take(self, samples: np.ndarray) -> list[Closed]:
        """Feed the next chunk (at the stream's rate); return the utterances it closed."""
        resampled = self._resample(samples) if self._resample else samples
        await self._take(resampled)
        return self._pop_closed()

    async def finish(self) -> list[Closed]:
        """End of audio: flush the resampler and close the open utterance."""
        if self._resample:
            await self._take(self._resample.flush())
        if self.open is not None:
            self._close_at(self._audio.end)
        return self._pop_closed()

    def commit(self) -> list[Closed]:
        """Close the open utterance here, on request (a client's commit), and go on: if the
        speaker is still talking, what follows is the next utterance, as when one is cut at
        its maximum length. Nothing open: nothing to close."""
        if self.open is not None:
            self._close_at(self._audio.end)
            self._open_at(self._audio.end)
        return self._pop_closed()

    def release(self) -> None:
        """Drop the audio and the VAD state (about 2 MB) once the stream is over."""
        self._audio = AudioBuffer()
        self._vad = None

    async def _take(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        if self._vad is None:
            self._vad = await to_thread.run_sync(OnlineVad, *self._vad_settings)
        events = await to_thread.run_sync(self._vad, samples)
        self._audio.append(samples)
        for kind, position in events:
            self._cut_long(position)
            if kind == "start" and self.open is None:
                self._open_at(max(position, self._audio.start))
            elif kind == "end" and self.open is not None:
                self._close_at(position)
        self._cut_long(self._audio.end)
        self._audio.drop_before(self.open.start if self.open else self._audio.end - PREROLL)

    def _cut_long(self, position: int) -> None:
        """Cut an utterance at exactly its maximum length, so cuts don't depend on chunking."""
        while self.open is not None and position - self.open.start >= self._max_utterance:
            cut = self.open.start + self._max_utterance
            self._close_at(cut)
            self._open_at(cut)

    def _open_at(self, start: int) -> None:
        self.open = Utterance(self.next_segment, start)
        self.next_segment += 1

    def _close_at(self, end: int) -> None:
        utterance, self.open = self.open, None
        self.quiet_since = end
        assert utterance is not None
        audio = self._audio.slice(utterance.start, end)
        if audio.size < MIN_UTTERANCE:
            # A click, or the tail of a forced cut: too short for a word, and too short for
            # a partial to have shown it, so its number goes to the next utterance.
            if utterance.segment == self.next_segment - 1:
                self.next_segment -= 1
            return
        self._closed.append(Closed(utterance.segment, utterance.start, end, audio))

    def _pop_closed(self) -> list[Closed]:
        closed, self._closed = self._closed, []
        return closed
