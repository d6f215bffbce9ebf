"""The episode engine, its message vocabulary, transports and recorders."""

from mug.session.engine import GameSession, episode_seed
from mug.session.messages import MessageError, decode_envelope, decode_inbound, encode_envelope
from mug.session.recording import MemoryRecorder, Recorder
from mug.session.transport import MemoryTransport, Transport

__all__ = [
    "GameSession",
    "MemoryRecorder",
    "MemoryTransport",
    "MessageError",
    "Recorder",
    "Transport",
    "decode_envelope",
    "decode_inbound",
    "encode_envelope",
    "episode_seed",
]
