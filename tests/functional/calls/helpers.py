"""Synthetic calls for the calls tests: WAV audio made with `wave`, MP3 and Ogg
tones encoded with `soundfile`, transcripts with a test card number (4111 1111 1111
1111, a well-known test number), and the API token a telephony integration would
use."""

from __future__ import annotations

import base64
import datetime as dt
import io
import struct
import wave
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from tests.support.world import World

from perpetua.clock import FrozenClock

RATE = 8000
LEVEL = 1000
CARD = "4111 1111 1111 1111"


def make_wav(seconds: float = 6.0, rate: int = RATE) -> bytes:
    """Mono 16-bit PCM where every sample is loud, so silence is easy to see."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(struct.pack("<h", LEVEL) * int(seconds * rate))
    return out.getvalue()


# A steady 440 Hz tone at this peak level: its RMS is TONE_LEVEL / sqrt(2).
TONE_LEVEL = 0.3


def make_compressed(
    container: str, codec: str, seconds: float = 6.0, rate: int = RATE, channels=1
) -> bytes:
    """A steady tone encoded as `container`/`codec` (libsndfile's names, for
    example "MP3"/"MPEG_LAYER_III" or "OGG"/"OPUS")."""
    t = np.arange(int(seconds * rate)) / rate
    tone = (TONE_LEVEL * np.sin(2 * np.pi * 440 * t)).astype("float32")
    out = io.BytesIO()
    with soundfile.SoundFile(
        out, "w", rate, channels, subtype=codec, format=container
    ) as writer:
        # Written in blocks: one long write overflows libvorbis's stack buffer.
        block = np.repeat(tone[:, None], channels, axis=1)
        for start in range(0, len(block), 4096):
            writer.write(block[start : start + 4096])
    return out.getvalue()


def decode(data: bytes) -> tuple[Any, int]:
    """Decoded frames (frames x channels, float) and the sample rate."""
    frames, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return frames, rate


def rms(frames: Any, rate: int, start: float, end: float) -> float:
    """Root mean square level of every channel between `start` and `end` seconds."""
    window = frames[int(start * rate) : int(end * rate)]
    assert len(window) > 0, "the window lies past the end of the audio"
    return float(np.sqrt(np.mean(np.square(window, dtype="float64"))))


def samples(data: bytes) -> list[int]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        frames = reader.readframes(reader.getnframes())
    return [value for (value,) in struct.iter_unpack("<h", frames)]


def timed_turns() -> list[dict[str, Any]]:
    """A caller reading a card number between 1.0 s and 3.0 s of the audio."""
    words = [
        ("my", 0.0, 0.3),
        ("card", 0.3, 0.6),
        ("is", 0.6, 0.8),
        ("4111", 1.0, 1.5),
        ("1111", 1.5, 2.0),
        ("1111", 2.0, 2.5),
        ("1111", 2.5, 3.0),
        ("thanks", 5.0, 5.5),
    ]
    return [
        {"speaker": "Agent", "text": "How would you like to pay?", "words": []},
        {
            "speaker": "Caller",
            "text": f"my card is {CARD} thanks",
            "words": [{"text": t, "start": s, "end": e} for t, s, e in words],
        },
    ]


def integration_token(
    world: World, scopes: tuple[str, ...] = ("calls:create",)
) -> dict[str, str]:
    made = world.api(
        "owner", "POST", "/api/v1/tokens", json={"name": "PBX", "scopes": list(scopes)}
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


def upload(
    world: World,
    token: dict[str, str],
    clock: FrozenClock,
    *,
    recording: bytes | None = None,
    transcript: Any = None,
    caller_number: str | None = None,
    ago: dt.timedelta = dt.timedelta(hours=1),
) -> Any:
    body: dict[str, Any] = {
        "direction": "inbound",
        "started_at": (clock.now() - ago).isoformat(),
        "duration_seconds": 6,
    }
    if caller_number:
        body["caller_number"] = caller_number
    if recording is not None:
        body["recording_base64"] = base64.b64encode(recording).decode("ascii")
    if transcript is not None:
        body["transcript"] = transcript
    return world.client.post("/api/v1/calls/uploads", json=body, headers=token)


def blob_files(data_dir: Path, practice_id: str) -> list[Path]:
    """Every file the blob store holds for the practice."""
    root = data_dir / "blobs" / practice_id
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
