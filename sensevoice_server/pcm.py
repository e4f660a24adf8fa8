"""The one audio format every stage after decoding speaks: 16 kHz mono float32 in [-1, 1].

SenseVoiceSmall, its VAD and CAM++ were all trained at 16 kHz; uploads (audio.py) and live
streams (live/audio.py) are resampled to it once, on the way in, and nothing after that
converts again.
"""

SAMPLE_RATE = 16_000
