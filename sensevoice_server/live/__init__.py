"""Live transcription: a stream of audio cut into utterances, each decoded for captions.

- `results.py`: what a session reports (a `Preview`, what was `Heard`), which each protocol maps;
- `protocol.py`: `/ws/transcribe`'s every message, the close codes, PCM frames (defined once);
- `vad.py`: silero VAD over one stream (onnxruntime), `hysteresis.py` its start/end rule;
  `audio.py`: gathering, resampling, the stream's buffer;
- `cutter.py`: utterances from VAD events, cut the same way however the audio is chunked;
- `session.py`: one stream's partial and final decodes, in order, with backpressure;
- `rules.py`: not too fast, not too slow (the pace and idle rules, over a clock);
- `stream.py`: one stream as a protocol drives it: the rules, then the session; the drain;
- `registry.py`: the process's bounded set of streams, the one way to open one, the drain.
"""

from sensevoice_server.live.registry import LiveSessions
from sensevoice_server.live.results import Heard, Preview
from sensevoice_server.live.session import LiveSession, ready_events
from sensevoice_server.live.stream import LiveStream, Stop

__all__ = ["Heard", "LiveSession", "LiveSessions", "LiveStream", "Preview", "Stop", "ready_events"]
