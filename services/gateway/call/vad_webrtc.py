"""WebRTC VAD (the C GMM detector from libwebrtc): ~microseconds per frame, so it costs almost nothing
per call. The default engine; see docs/BENCHMARKS.md for the comparison with Silero."""

from __future__ import annotations

import webrtcvad


class WebRtcVad:
    name = "webrtc"
    sample_rate = 16000
    frame_samples = 320  # 20 ms

    def __init__(self, aggressiveness: int = 2) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes) -> bool:
        return self._vad.is_speech(frame, self.sample_rate)

    def on_turn(self, open_: bool) -> None:
        """Decides every frame the same way, in a turn or not."""

    def confirm_onset(self, audio: bytes) -> bool:
        return True

    def reset(self) -> None:
        """Stateless between frames apart from its internal adaptation; nothing to reset."""
