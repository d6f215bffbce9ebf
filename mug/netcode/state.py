"""``PeerState``: the state of a :class:`~mug.netcode.peer.RollbackPeer`, declared once for the mixins that make it up.

``RollbackPeer`` sets every attribute in its ``__init__``; :class:`~mug.netcode.inputs.InputExchange`,
:class:`~mug.netcode.resync.Resync` and :class:`~mug.netcode.handover.Handover` read and change them. This class
only names them (and the methods the mixins call on each other) for readers and type checkers: it holds no
state and no behaviour of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mug.netcode.records import FrameRecord, PeerStats
    from mug.netcode.simulation import FrameResult, Simulation
    from mug.netcode.sync import TimeSync

__all__ = ["PeerState"]


class PeerState:
    """The attributes of a ``RollbackPeer`` (see ``RollbackPeer.__init__`` for what each holds)."""

    peer_id: str
    owners: dict[str, str]
    humans: list[str]
    local_seats: list[str]
    horizon: int
    log_frames: int
    max_prediction: int
    max_redundancy: int
    frame: int
    confirmed: int
    stats: PeerStats
    sync: TimeSync
    sim: Simulation
    designated: str
    ai_seats: list[str]
    seats: list[str]
    peers: list[str]
    remotes: list[str]
    default_action: Any
    max_transfers: int
    _inputs: dict[int, dict[str, Any]]
    _upto: dict[str, int]
    _last_known: dict[str, Any]
    _stamped: int
    _acked: dict[str, int]
    _state_source: str | None
    _heard: set[str]
    _state_wanted: set[str]
    _stamped_at: dict[int, float]
    _used: dict[int, dict[str, Any]]
    _results: dict[int, FrameResult]
    _ring: dict[int, Any]
    _ai_obs: dict[int, dict[str, Any]]
    _live: int
    _stale: int | None
    _rollback_from: int | None
    _ai_requested: dict[str, int]
    _ai_blobs: dict[str, list[tuple[int, Any, Any]]]
    _ai_restore: dict[str, dict[str, Any]]
    _requests: list[Any]
    _chain: str
    _chains: dict[int, str]
    _hashes: dict[int, str]
    _remote_hashes: dict[str, dict[int, str]]
    _open_desyncs: dict[str, dict[str, Any]]
    _transfers_sent: dict[str, int]
    _attempts: dict[str, int]
    _next_transfer: dict[str, int]
    _unrepairable: set[str]
    _matched: dict[str, int]
    _resolved_at: dict[str, int]
    _agreed_episode: int
    _episode_now: int
    _episode_reports: dict[int, dict[str, int]]
    _episode_counts: dict[str, Any]
    _episode_stats: dict[int, dict[str, Any]]
    _records: list[FrameRecord]
    _events: list[dict[str, Any]]
    _outbox: list[tuple[str | None, str, dict[str, Any]]]
    _epoch: int
    _lost: int
    _ai_from: dict[str, int]
    _gone: set[str]
    _handovers: dict[str, dict[str, dict[int, Any]]]
    _per_remote: tuple[dict[str, Any], ...]

    if TYPE_CHECKING:  # methods defined on RollbackPeer or one of its mixins, called across them

        def _valid(self, seat: str, action: Any) -> bool: ...
        def _check_prediction(self, seat: str, frame: int, actual: Any) -> None: ...
        def _server_for(self, peer: str) -> str: ...
        def _observe(self) -> dict[str, Any]: ...
        def _advance_upto(self, seat: str) -> None: ...
        def _fix_inputs(self, peer: str, c: int, start: int, inputs: dict[str, list[Any]]) -> None: ...
        def _check_agreed(self, episode: int) -> None: ...
