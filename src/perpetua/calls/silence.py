"""Silences the stretches of a WAV recording where a card number was spoken.

The transcript's word timings say when the digits were said; every sample inside
those spans is replaced by digital silence before the recording is stored, so the
stored audio never holds them. Only uncompressed PCM WAV can be edited this way
(the `wave` module reads nothing else): MP3 and OGG are compressed, and cutting
their frames safely needs a decoder we do not ship, so a compressed recording with
card spans is refused instead (`RecordingNotSilenceable`).
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Sequence

from perpetua.calls.errors import RecordingNotSilenceable, UnsupportedMedia
from perpetua.redaction import AudioSpan

# A little audio either side of each span: word timings from speech-to-text are
# approximate, and a clipped first or last digit would still be a digit.
MARGIN_SECONDS = 0.25


def silence_wav(data: bytes, spans: Sequence[AudioSpan]) -> bytes:
    """`data` with every frame inside `spans` (plus a margin) set to silence."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            params = reader.getparams()
            frames = bytearray(reader.readframes(params.nframes))
    except (wave.Error, EOFError) as exc:
        # Not PCM (for example A-law or float WAV), or a truncated file.
        if spans:
            raise RecordingNotSilenceable() from exc
        raise UnsupportedMedia("the WAV recording could not be read") from exc
    if not spans:
        return data

    width = params.sampwidth * params.nchannels
    # 8-bit PCM is unsigned, centred on 128; wider samples are signed, centred on 0.
    quiet = b"\x80" if params.sampwidth == 1 else b"\x00"
    total = len(frames) // width
    for span in spans:
        first = max(0, math.floor((span.start - MARGIN_SECONDS) * params.framerate))
        last = min(total, math.ceil((span.end + MARGIN_SECONDS) * params.framerate))
        if last > first:
            frames[first * width : last * width] = quiet * ((last - first) * width)

    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setparams(params)
        writer.writeframes(bytes(frames))
    return out.getvalue()
