"""Live transcription: a stream of audio cut into utterances, each decoded for captions.

- `protocol.py`: every WebSocket message, the close codes, PCM frames (defined once);
- `vad.py`: silero VAD over one stream; `audio.py`: resampling and the stream's buffer;
- `cutter.py`: utterances from VAD events, cut the same way however the audio is chunked;
- `session.py`: one stream's partial and final decodes, in order, with backpressure;
- `registry.py`: the process's bounded set of streams and the one way to open one.
"""

from sensevoice_server.live.protocol import Final, Partial
from sensevoice_server.live.registry import LiveSessions, Slot
from sensevoice_server.live.session import LiveSession, drain

__all__ = ["Final", "LiveSession", "LiveSessions", "Partial", "Slot", "drain"]
