"""funasr's FSMN VAD post-processing: from each 10 ms frame's silence score and energy to
speech segments, as funasr's FsmnVADStreaming finds them.

Per frame: silence when quieter than `decibel_thres`, else speech when the network's speech
probability beats its silence probability by `speech_noise_thres` (GetFrameState). A 200 ms
window of those votes turns silence into speech and back (WindowDetector); the state machine
(DetectOneFrame) opens a segment a little before the speech it saw (lookback), closes it
after `max_end_silence_time` of silence (less lookahead) or at `max_single_segment_time`,
and starts over for the next one. The caller feeds it the frames of one funasr chunk at a
time (its 60 s pieces) and gets back the segments finished in that chunk; the last chunk
closes what is open.

Gap filled: this logic lives in funasr/models/fsmn_vad_streaming/model.py, inside a torch
module, so it cannot be imported without torch. It follows funasr's code method for method
(names kept in the comments) and leaves out what does not change a segment: the audio
buffers funasr keeps beside the segments, its prints, per-frame probabilities. funasr's
streaming output ([start, -1] ...) is left out too: an offline call (chunks of 60 s) never
gives it. tests/unit/test_fsmn_onnx.py holds the segments to funasr's, sample for sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sensevoice_server.engine.fsmn_config import VadOptions

NOT_STARTED, IN_SPEECH, ENDED = 1, 2, 3  # VadStateMachine: a start found / speech / an end
SILENCE, SPEECH = 0, 1  # FrameState
SPEECH_TO_SPEECH, SPEECH_TO_SILENCE, SILENCE_TO_SILENCE, SILENCE_TO_SPEECH = 0, 1, 2, 3
SINGLE_UTTERANCE, MULTIPLE_UTTERANCES = 0, 1  # VadDetectMode


class WindowDetector:
    """funasr's WindowDetector: a sliding window of frame votes, with two thresholds."""

    def __init__(self, options: VadOptions) -> None:
        self.size = int(options.window_size_ms / options.frame_in_ms)
        self._to_speech = int(options.sil_to_speech_time_thres / options.frame_in_ms)
        self._to_silence = int(options.speech_to_sil_time_thres / options.frame_in_ms)
        self.reset()

    def reset(self) -> None:
        self._votes = [0] * self.size
        self._sum = 0
        self._position = 0
        self._speech = False

    def detect(self, speech: bool) -> int:
        """The change this frame makes (DetectOneFrame)."""
        vote = int(speech)
        self._sum += vote - self._votes[self._position]
        self._votes[self._position] = vote
        self._position = (self._position + 1) % self.size
        if not self._speech and self._sum >= self._to_speech:
            self._speech = True
            return SILENCE_TO_SPEECH
        if self._speech and self._sum <= self._to_silence:
            self._speech = False
            return SPEECH_TO_SILENCE
        return SPEECH_TO_SPEECH if self._speech else SILENCE_TO_SILENCE


@dataclass
class Segment:
    """E2EVadSpeechBufWithDoa, without its audio."""

    start_ms: int
    end_ms: int
    has_start: bool = False
    has_end: bool = False


class Endpoints:
    """One upload's VAD state (funasr's `cache["stats"]` and `cache["windows_detector"]`)."""

    def __init__(self, options: VadOptions, speech_noise_thres: float | None = None) -> None:
        self.o = options
        self.window = WindowDetector(options)
        # Stats
        self.buffer_start_frame = 0  # data_buf_start_frame
        self.frame_count = 0  # frm_cnt
        self.latest_speech_frame = 0  # latest_confirmed_speech_frame
        self.latest_silence_frame = -1  # lastest_confirmed_silence_frame
        self.silence_frames = 0  # continous_silence_frame_count
        self.state = NOT_STARTED
        self.start_frame = -1  # confirmed_start_frame
        self.end_frame = -1  # confirmed_end_frame
        self.ends_detected = 0  # number_end_time_detected
        self.noise_decibel = -100.0  # noise_average_decibel
        self.max_end_silence_ms = options.max_end_silence_time - options.speech_to_sil_time_thres
        self.speech_noise_thres = (
            options.speech_noise_thres if speech_noise_thres is None else speech_noise_thres
        )
        self.segments: list[Segment] = []  # output_data_buf
        self._emitted = 0  # output_data_buf_offset

    @property
    def in_speech(self) -> bool:
        return self.state == IN_SPEECH

    def chunk(
        self, silence_scores: list[float], decibels: list[float], final: bool
    ) -> list[list[int]]:
        """Run the frames of one chunk (forward: DetectCommonFrames, or DetectLastFrames on
        the last chunk); the segments [start_ms, end_ms] this chunk finished."""
        first = self.frame_count
        self.frame_count += len(silence_scores)
        if self.state != ENDED:
            for offset, (score, decibel) in enumerate(zip(silence_scores, decibels, strict=True)):
                last = final and offset == len(silence_scores) - 1
                self._detect(self._frame_state(score, decibel), first + offset, last)
        found = []
        for segment in self.segments[self._emitted :]:
            if not final and not (segment.has_start and segment.has_end):
                continue
            found.append([segment.start_ms, segment.end_ms])
            self._emitted += 1
        return found

    # --- GetFrameState ----------------------------------------------------------------------
    def _frame_state(self, silence_score: float, decibel: float) -> int:
        o = self.o
        if decibel < o.decibel_thres:
            return SILENCE
        snr = decibel - self.noise_decibel
        noise_prob = math.log(silence_score) * o.speech_2_noise_ratio
        speech_prob = math.log(1.0 - silence_score)
        if math.exp(speech_prob) >= math.exp(noise_prob) + self.speech_noise_thres:
            if snr >= o.snr_thres and decibel >= o.decibel_thres:
                return SPEECH
            return SILENCE
        if self.noise_decibel < -99.9:
            self.noise_decibel = decibel
        else:
            frames = o.noise_frame_num_used_for_snr
            self.noise_decibel = (decibel + self.noise_decibel * (frames - 1)) / frames
        return SILENCE

    # --- DetectOneFrame ---------------------------------------------------------------------
    def _detect(self, frame_state: int, frame: int, last: bool) -> None:
        o = self.o
        speech = frame_state == SPEECH and math.fabs(1.0) > o.fe_prior_thres
        change = self.window.detect(speech)
        too_long = frame - self.start_frame + 1 > o.max_single_segment_time / o.frame_in_ms
        if change == SILENCE_TO_SPEECH:
            self.silence_frames = 0
            if self.state == NOT_STARTED:
                start = max(self.buffer_start_frame, frame - self._latency())
                self._voice_start(start)
                self.state = IN_SPEECH
                for t in range(start + 1, frame + 1):
                    self._voice_detected(t)
            elif self.state == IN_SPEECH:
                for t in range(self.latest_speech_frame + 1, frame):
                    self._voice_detected(t)
                self._continue_speech(frame, last, too_long)
        elif change in (SPEECH_TO_SILENCE, SPEECH_TO_SPEECH):
            self.silence_frames = 0
            if self.state == IN_SPEECH:
                self._continue_speech(frame, last, too_long)
        elif change == SILENCE_TO_SILENCE:
            self.silence_frames += 1
            if self.state == NOT_STARTED:
                self._silence_before_start(frame, last)
            elif self.state == IN_SPEECH:
                self._silence_in_speech(frame, last, too_long)
        if self.state == ENDED and o.detect_mode == MULTIPLE_UTTERANCES:
            self._reset()

    def _continue_speech(self, frame: int, last: bool, too_long: bool) -> None:
        """A speech frame (or the first silent one) inside a segment."""
        if too_long:
            self._voice_end(frame)
            self.state = ENDED
        elif not last:
            self._voice_detected(frame)
        else:
            self._end_if_last(last, frame)

    def _silence_before_start(self, frame: int, last: bool) -> None:
        o = self.o
        timed_out = (
            o.detect_mode == SINGLE_UTTERANCE
            and self.silence_frames * o.frame_in_ms > o.max_start_silence_time
        )
        if timed_out or (last and self.ends_detected == 0):
            for t in range(self.latest_silence_frame + 1, frame):
                self._silence_detected(t)
            self._voice_start(0, fake=True)
            self._voice_end(0, fake=True)
            self.state = ENDED
        elif frame >= self._latency():
            self._silence_detected(frame - self._latency())

    def _silence_in_speech(self, frame: int, last: bool, too_long: bool) -> None:
        o = self.o
        if self.silence_frames * o.frame_in_ms >= self.max_end_silence_ms:
            lookback = int(self.max_end_silence_ms / o.frame_in_ms)
            if o.do_extend:
                lookback -= int(o.lookahead_time_end_point / o.frame_in_ms)
                lookback = max(0, lookback - 1)
            self._voice_end(frame - lookback)
            self.state = ENDED
        elif too_long:
            self._voice_end(frame)
            self.state = ENDED
        elif o.do_extend and not last:
            if self.silence_frames <= int(o.lookahead_time_end_point / o.frame_in_ms):
                self._voice_detected(frame)
        else:
            self._end_if_last(last, frame)

    # --- the callbacks DetectOneFrame calls -------------------------------------------------
    def _latency(self) -> int:  # LatencyFrmNumAtStartPoint
        latency = self.window.size
        if self.o.do_extend:
            latency += int(self.o.lookback_time_start_point / self.o.frame_in_ms)
        return latency

    def _silence_detected(self, frame: int) -> None:  # OnSilenceDetected
        self.latest_silence_frame = frame
        if self.state == NOT_STARTED:
            self.buffer_start_frame = max(self.buffer_start_frame, frame)  # PopDataBufTillFrame

    def _voice_detected(self, frame: int) -> None:  # OnVoiceDetected
        self.latest_speech_frame = frame
        self._pop(frame, starts=False, ends=False)

    def _voice_start(self, frame: int, fake: bool = False) -> None:  # OnVoiceStart
        if self.start_frame == -1:
            self.start_frame = frame
        if not fake and self.state == NOT_STARTED:
            self._pop(self.start_frame, starts=True, ends=False)

    def _voice_end(self, frame: int, fake: bool = False) -> None:  # OnVoiceEnd
        for t in range(self.latest_speech_frame + 1, frame):
            self._voice_detected(t)
        if self.end_frame == -1:
            self.end_frame = frame
        if not fake:
            self._pop(self.end_frame, starts=False, ends=True)
        self.ends_detected += 1

    def _end_if_last(self, last: bool, frame: int) -> None:  # MaybeOnVoiceEndIfLastFrame
        if last:
            self._voice_end(frame)
            self.state = ENDED

    def _pop(self, frame: int, starts: bool, ends: bool) -> None:
        """PopDataToOutputBuf for one frame: the open segment now reaches past `frame`."""
        self.buffer_start_frame = max(self.buffer_start_frame, frame)  # PopDataBufTillFrame
        frame_ms = self.o.frame_in_ms
        if not self.segments or starts:
            self.segments.append(Segment(frame * frame_ms, frame * frame_ms))
        segment = self.segments[-1]
        self.buffer_start_frame += 1
        segment.end_ms = (frame + 1) * frame_ms
        segment.has_start = segment.has_start or starts
        segment.has_end = segment.has_end or ends

    def _reset(self) -> None:  # ResetDetection
        self.silence_frames = 0
        self.latest_speech_frame = 0
        self.latest_silence_frame = -1
        self.start_frame = -1
        self.end_frame = -1
        self.state = NOT_STARTED
        self.window.reset()
