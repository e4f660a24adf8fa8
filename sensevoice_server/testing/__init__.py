"""What tests and benchmarks share: random-weight checkpoints in the real funasr format, and
the reference pipeline every front end is held to. Not used by the service itself."""
