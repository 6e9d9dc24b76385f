"""Silences the stretches of a recording where a card number was spoken.

The transcript's word timings say when the digits were said; every sample inside
those spans is replaced by digital silence before the recording is stored, so the
stored audio never holds them.

- PCM WAV is edited in place with the `wave` module: the samples are zeroed and the
  header is written again, nothing else changes.
- MP3 and Ogg (Vorbis or Opus) are compressed: their frames cannot be cut without
  decoding them. They are decoded with libsndfile (the `soundfile` package),
  zeroed in the decoded samples, and encoded again in the same container and codec
  family. Only the re-encoded audio leaves this module; the delivered bytes are
  read from memory and never written anywhere, and nothing here touches the disk
  (libsndfile reads and writes Python file objects through callbacks).

A recording whose card spans cannot be silenced (a WAV that is not PCM, audio that
does not decode) is refused (`RecordingNotSilenceable`) rather than stored with
the digits.
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Sequence

import numpy as np
import soundfile

from perpetua.calls.errors import RecordingNotSilenceable, UnsupportedMedia
from perpetua.calls.media import MP3, OGG, WAV
from perpetua.redaction import AudioSpan

# A little audio either side of each span: word timings from speech-to-text are
# approximate, and a clipped first or last digit would still be a digit.
MARGIN_SECONDS = 0.25

# Decoded audio is handled a block at a time, so a long recording is never held
# as one array of samples. Small writes matter too: libvorbis allocates its work
# buffer on the stack in proportion to one write, and a long write overflows it.
_BLOCK_FRAMES = 8192

# The rates and channel counts of telephony (8 kHz mono up to 48 kHz stereo).
# Anything outside is refused before it reaches an encoder: libvorbis is known to
# crash on very high sample rates, and a crafted header can claim any rate.
_MIN_RATE, _MAX_RATE = 8000, 48000
_MAX_CHANNELS = 2

# libsndfile's name for each container, and the codecs we encode again in it.
# libsndfile encodes only Layer III, so MPEG Layer I/II audio comes back as Layer
# III: still MPEG audio, still `audio/mpeg`.
_CONTAINERS = {MP3: "MP3", OGG: "OGG"}
_CODECS = {
    MP3: {
        "MPEG_LAYER_I": "MPEG_LAYER_III",
        "MPEG_LAYER_II": "MPEG_LAYER_III",
        "MPEG_LAYER_III": "MPEG_LAYER_III",
    },
    OGG: {"VORBIS": "VORBIS", "OPUS": "OPUS"},
}
_NAMES = {MP3: "MP3", OGG: "Ogg"}


def _frame_ranges(spans: Sequence[AudioSpan], rate: int) -> list[tuple[int, int]]:
    """Each span as [first, last) frame numbers, widened by the margin."""
    ranges = []
    for span in spans:
        first = max(0, math.floor((span.start - MARGIN_SECONDS) * rate))
        last = math.ceil((span.end + MARGIN_SECONDS) * rate)
        if last > first:
            ranges.append((first, last))
    return ranges


def silence(data: bytes, kind: str, spans: Sequence[AudioSpan]) -> bytes:
    """`data` (of audio type `kind`) with every sample inside `spans` silenced."""
    if kind == WAV:
        return silence_wav(data, spans)
    return silence_compressed(data, kind, spans)


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
    for first, last in _frame_ranges(spans, params.framerate):
        last = min(total, last)
        if last > first:
            frames[first * width : last * width] = quiet * ((last - first) * width)

    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setparams(params)
        writer.writeframes(bytes(frames))
    return out.getvalue()


def silence_compressed(data: bytes, kind: str, spans: Sequence[AudioSpan]) -> bytes:
    """MP3 or Ogg `data` decoded, silenced inside `spans`, and encoded again."""
    name = _NAMES[kind]
    undecodable = RecordingNotSilenceable(
        f"the {name} recording could not be decoded, so the card number spoken in "
        "it cannot be silenced"
    )
    try:
        reader = soundfile.SoundFile(io.BytesIO(data))
    except soundfile.SoundFileError as exc:
        raise undecodable from exc

    with reader:
        # Decode only what the first bytes announced: an `OggS` file that
        # libsndfile reads as something else is not the recording we were sent.
        codec = _CODECS[kind].get(reader.subtype)
        if reader.format != _CONTAINERS[kind] or codec is None:
            raise undecodable
        rate, channels = reader.samplerate, reader.channels
        if not (_MIN_RATE <= rate <= _MAX_RATE and 1 <= channels <= _MAX_CHANNELS):
            raise RecordingNotSilenceable(
                f"the {name} recording's sample rate or channel count is outside "
                "what telephony uses, so it is not re-encoded"
            )

        ranges = _frame_ranges(spans, rate)
        out = io.BytesIO()
        decoded = 0
        try:
            with soundfile.SoundFile(
                out, "w", rate, channels, subtype=codec, format=_CONTAINERS[kind]
            ) as writer:
                for block in reader.blocks(
                    _BLOCK_FRAMES, dtype="float32", always_2d=True
                ):
                    _zero(block, decoded, ranges)
                    writer.write(block)
                    decoded += len(block)
        except (soundfile.SoundFileError, ValueError) as exc:
            raise undecodable from exc

    # A header that opens but yields no audio is corrupt, not a silent call.
    if decoded == 0:
        raise undecodable
    return out.getvalue()


def _zero(block: np.ndarray, offset: int, ranges: Sequence[tuple[int, int]]) -> None:
    """Zero the frames of `block` (starting at frame `offset`) inside `ranges`."""
    end = offset + len(block)
    for first, last in ranges:
        start, stop = max(first, offset), min(last, end)
        if stop > start:
            block[start - offset : stop - offset] = 0.0
