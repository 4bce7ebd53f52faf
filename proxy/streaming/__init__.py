"""The stream path: how the pipeline's output stages run over a streamed response.

- `plan`: which output stages inspect as text flows, which judge at the end of the turn, and what
  is held for them (worked out from the one ordered stage list);
- `session`: the per-stream state machine that decides, part by part, what leaves;
- `holdback`: the text hold-back gate in front of the incremental inspectors;
- `sse`: the I/O pump from the upstream's events to the client's bytes;
- `response`: the client-facing streamed response and its clean-up.
Wire formats stay in the providers' stream codecs.
"""

from proxy.streaming.session import StreamLimits, StreamSession

__all__ = ["StreamLimits", "StreamSession"]
