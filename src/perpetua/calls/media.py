"""Recognises recordings by their first bytes, not by what the sender claims.

A file name or a Content-Type header is the sender's say-so; the magic bytes are
what a player will act on. Anything that is not WAV, MP3 or OGG is refused before
it is stored.
"""

from __future__ import annotations

from perpetua.calls.errors import UnsupportedMedia

WAV = "audio/wav"
MP3 = "audio/mpeg"
OGG = "audio/ogg"
AUDIO_TYPES = (WAV, MP3, OGG)

# The largest recording taken in one request: about 50 minutes of 8 kHz 16-bit
# mono WAV, held in memory while it is checked, silenced and encrypted.
MAX_RECORDING_BYTES = 48 * 1024 * 1024
MAX_TRANSCRIPT_BYTES = 2 * 1024 * 1024


def _is_mp3_frame(head: bytes) -> bool:
    # An MPEG audio frame header: 11 sync bits, a version that is not reserved,
    # a layer that is not reserved, and a bitrate index that is not "bad".
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0x03
    layer = (head[1] >> 1) & 0x03
    bitrate = head[2] >> 4
    return version != 0x01 and layer != 0x00 and bitrate != 0x0F


def sniff_audio(data: bytes) -> str:
    """The audio type of `data`, or `UnsupportedMedia`."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return WAV
    if data[:4] == b"OggS":
        return OGG
    if data[:3] == b"ID3" or _is_mp3_frame(data[:4]):
        return MP3
    raise UnsupportedMedia()


def check_recording_size(data: bytes) -> None:
    if not data:
        raise UnsupportedMedia("the recording is empty")
    if len(data) > MAX_RECORDING_BYTES:
        raise UnsupportedMedia(
            f"a recording may be at most {MAX_RECORDING_BYTES // (1024 * 1024)} MiB"
        )
