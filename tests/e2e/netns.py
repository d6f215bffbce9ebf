"""Network namespaces for browser tests, linked through a userspace delay line: latency, jitter and loss on the
packets between the namespaces, below the browser (this kernel has no ``netem`` qdisc, so ``tc qdisc ... netem``
is not an option).

Each namespace has a TUN device ``mug0`` with the address ``10.77.0.<i + 1>/24`` and its loopback up. One helper
process (this file run as a script) holds the TUN devices and forwards every IPv4 packet one namespace sends to
another to the TUN device of the namespace that has its destination address, after the delay of that direction's
``Link`` (plus a uniform jitter, so packets may arrive out of order as with netem) unless the link drops it;
the draws come from a generator seeded per direction. What a browser in a namespace sends a browser in another
(WebRTC's UDP: the DataChannels) therefore arrives late, lost or reordered as a real network would deliver it.

The test's server stays on the host's loopback: ``expose(port)`` has the helper listen on ``127.0.0.1:port`` in
every namespace and relay each connection to ``127.0.0.1:port`` of the host (not delayed: the pages' origin is the
usual loopback one). ``wrapper(i)`` is an executable that runs Chromium inside namespace ``i``, for Playwright's
``executable_path`` (Playwright talks to the browser over a pipe, which no namespace separates).

``Namespaces`` deletes its namespaces and stops the helper when it is closed (also when the block that uses it
fails); namespaces left by a test process that was killed are deleted by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

PREFIX = "mug-e2e-"
TUN_NAME = "mug0"
SUBNET = "10.77.0"
_CLONE_NEWNET = 0x40000000
_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000


class NetnsError(RuntimeError):
    """The namespaces or their delay line could not be set up or stopped."""


@dataclass(frozen=True)
class Link:
    """What the delay line does to each packet of one direction: held ``delay_ms`` plus a uniform draw in
    ``[-jitter_ms, jitter_ms]`` (never below 0), dropped with probability ``loss`` (``1``: the link is down)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0 or not 0 <= self.loss <= 1:
            raise ValueError(f"a link needs delay_ms >= 0, jitter_ms >= 0 and 0 <= loss <= 1, got {self}")


def unavailable() -> str | None:
    """Why namespaces with TUN devices cannot be made here (what is missing), or None when they can."""
    if os.geteuid() != 0:
        return f"network namespaces need root (this test runs as uid {os.geteuid()})"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing (a kernel without TUN devices)"
    name = f"{PREFIX}{os.getpid()}-probe"
    try:
        for command in (["ip", "netns", "add", name], ["ip", "-n", name, "tuntap", "add", "dev", TUN_NAME, "mode", "tun"]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                return f"`{' '.join(command)}` failed: {done.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def _remove_stale() -> None:
    """Delete the namespaces of test processes that are gone."""
    for path in Path("/run/netns").glob(f"{PREFIX}*") if Path("/run/netns").is_dir() else []:
        pid = re.match(rf"{PREFIX}(\d+)-", path.name)
        if pid and not Path(f"/proc/{pid.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", path.name], capture_output=True)


class Namespaces:
    """``count`` network namespaces linked through the delay line (see the module docs). ``link`` applies to every
    direction, ``links[(i, j)]`` overrides it for what namespace ``i`` sends namespace ``j``; ``seed`` seeds the
    draws. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        workdir: Path,
        count: int = 2,
        link: Link = Link(),
        links: dict[tuple[int, int], Link] | None = None,
        seed: int = 1,
    ) -> None:
        if not 2 <= count <= 200:
            raise ValueError(f"count: 2 to 200 namespaces, got {count}")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.names = [f"{PREFIX}{os.getpid()}-{id(self):x}-{i}" for i in range(count)]
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(count)]
        directions = {(i, j): link for i in range(count) for j in range(count) if i != j}
        for key in links or {}:
            if key not in directions:
                raise ValueError(f"links: {key} is not a direction between two of the {count} namespaces")
        directions.update(links or {})
        self.links = directions
        self._helper: subprocess.Popen | None = None
        _remove_stale()
        try:
            for name in self.names:
                _ip("netns", "add", name)
                _ip("-n", name, "link", "set", "lo", "up")
            spec = {
                "names": self.names,
                "addresses": self.addresses,
                "seed": seed,
                "links": [[i, j, asdict(v)] for (i, j), v in directions.items()],
            }
            self._helper = subprocess.Popen(
                [sys.executable, __file__, json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self._answer("ready")
        except BaseException:
            self.close()
            raise

    def _answer(self, expected: str) -> str:
        assert self._helper is not None and self._helper.stdout is not None
        line = self._helper.stdout.readline().strip()
        if not line.startswith(expected):
            try:
                code = self._helper.wait(5) if not line else self._helper.poll()
            except subprocess.TimeoutExpired:
                code = None
            raise NetnsError(f"the delay line answered {line!r} (expected {expected!r}; exit code {code}, its error above)")
        return line[len(expected) :].strip()

    def _ask(self, command: str, expected: str) -> str:
        assert self._helper is not None and self._helper.stdin is not None
        self._helper.stdin.write(command + "\n")
        self._helper.stdin.flush()
        return self._answer(expected)

    def expose(self, port: int) -> None:
        """``127.0.0.1:port`` of the host reachable at ``127.0.0.1:port`` in every namespace (not delayed)."""
        self._ask(f"expose {int(port)}", "exposed")

    def set_link(self, i: int, j: int, link: Link) -> None:
        """From now on, what namespace ``i`` sends namespace ``j`` goes through ``link`` (packets already in the
        line keep their delay): a network that goes down (``loss=1``) or comes back."""
        if (i, j) not in self.links:
            raise ValueError(f"set_link: {(i, j)} is not a direction between two of the {len(self.names)} namespaces")
        self.links[i, j] = link
        self._ask(f"link {i} {j} {json.dumps(asdict(link), separators=(',', ':'))}", "linked")

    def stats(self) -> dict[str, dict[str, int]]:
        """Packets per direction ``"i>j"``: ``sent`` (delivered after their delay), ``dropped`` (the link's loss),
        ``overflow`` (refused by the receiving device: a full queue), ``late`` (still in the delay line);
        ``"other"``: packets to no namespace (not forwarded; e.g. IPv6 neighbour discovery)."""
        return json.loads(self._ask("stats", "stats"))

    def wrapper(self, index: int, chromium: str) -> Path:
        """An executable that runs ``chromium`` with its arguments inside namespace ``index``."""
        path = self.workdir / f"chromium-in-{index}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.names[index]} {shlex.quote(chromium)} "$@"\n')
        path.chmod(0o755)
        return path

    def close(self) -> None:
        """Stop the delay line and delete the namespaces (what is left of them); raises if one stays."""
        helper, self._helper = self._helper, None
        if helper is not None:
            with contextlib.suppress(BrokenPipeError):  # (it has ended already)
                helper.stdin.close()  # the helper ends at the end of its input
            try:
                helper.wait(10)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait(10)
            helper.stdout.close()
        left = []
        for name in self.names:
            if Path(f"/run/netns/{name}").exists():
                done = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
                if done.returncode != 0:
                    left.append(f"{name}: {done.stderr.strip()}")
        if left:
            raise NetnsError(f"namespaces not deleted: {left}")

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- the helper process: TUN devices, the delay line and the loopback relays --------------------------------


class _Netns:
    """``with _Netns(name):`` this (single-threaded) process's sockets and TUN devices are made in ``name``."""

    _libc = ctypes.CDLL(None, use_errno=True)

    def __init__(self, name: str) -> None:
        self.name = name

    def _enter(self, fd: int) -> None:
        if self._libc.setns(fd, _CLONE_NEWNET) != 0:
            raise NetnsError(f"setns into {self.name}: {os.strerror(ctypes.get_errno())}")

    def __enter__(self) -> None:
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            self._enter(target)
        finally:
            os.close(target)

    def __exit__(self, *exc) -> None:
        try:
            self._enter(self.home)
        finally:
            os.close(self.home)


class _DelayLine:
    def __init__(self, spec: dict) -> None:
        self.loop = asyncio.get_running_loop()
        self.names: list[str] = spec["names"]
        self.by_address = {socket.inet_aton(a): i for i, a in enumerate(spec["addresses"])}
        self.links = {(i, j): Link(**v) for i, j, v in spec["links"]}
        self.draws = {key: random.Random(f"{spec['seed']}/{key[0]}>{key[1]}") for key in self.links}
        self.counts = {f"{i}>{j}": {"sent": 0, "dropped": 0, "overflow": 0, "late": 0} for i, j in self.links}
        self.other = 0
        self.tuns: list[int] = []
        self.servers: list[asyncio.AbstractServer] = []
        for i, (name, address) in enumerate(zip(self.names, spec["addresses"])):
            with _Netns(name):
                fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
                fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", TUN_NAME.encode(), _IFF_TUN | _IFF_NO_PI))
            self.tuns.append(fd)
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", TUN_NAME)
            _ip("-n", name, "link", "set", TUN_NAME, "up")
            self.loop.add_reader(fd, self._read, i)

    def _read(self, source: int) -> None:
        while True:
            try:
                packet = os.read(self.tuns[source], 65536)
            except BlockingIOError:
                return
            target = self.by_address.get(packet[16:20]) if packet[:1] and packet[0] >> 4 == 4 else None
            if target is None or target == source:
                self.other += 1
                continue
            link, draw, count = self.links[source, target], self.draws[source, target], self.counts[f"{source}>{target}"]
            if link.loss and draw.random() < link.loss:
                count["dropped"] += 1
                continue
            delay = max(0.0, link.delay_ms + (draw.uniform(-link.jitter_ms, link.jitter_ms) if link.jitter_ms else 0.0))
            count["late"] += 1
            self.loop.call_later(delay / 1000, self._deliver, target, packet, count)

    def _deliver(self, target: int, packet: bytes, count: dict[str, int]) -> None:
        count["late"] -= 1
        try:
            os.write(self.tuns[target], packet)
        except OSError:  # the device's queue is full: lost, as on a congested link
            count["overflow"] += 1
            return
        count["sent"] += 1

    async def expose(self, port: int) -> None:
        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

        for name in self.names:
            with _Netns(name):
                sock = socket.create_server(("127.0.0.1", port))
            self.servers.append(await asyncio.start_server(relay, sock=sock))

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for fd in self.tuns:
            self.loop.remove_reader(fd)
            os.close(fd)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _serve(spec: dict) -> None:
    line = _DelayLine(spec)
    try:
        commands = asyncio.StreamReader()
        await line.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
        print("ready", flush=True)
        while raw := await commands.readline():
            command, *args = raw.decode().split()
            if command == "expose":
                await line.expose(int(args[0]))
                print("exposed", flush=True)
            elif command == "link":
                line.links[int(args[0]), int(args[1])] = Link(**json.loads(args[2]))
                print("linked", flush=True)
            elif command == "stats":
                print("stats", json.dumps({**line.counts, "other": line.other}), flush=True)
            else:
                print(f"unknown command {command!r}", flush=True)
    finally:
        line.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the test's Ctrl-C: the test process ends this one (stdin closes)
    asyncio.run(_serve(json.loads(sys.argv[1])))
