"""Remote senders: the load generator's sending half on other hosts, driven over OpenSSH.

The system's ``ssh`` client is used as the user has it set up (``~/.ssh/config``, ProxyJump,
agent, known_hosts), always in batch mode, so a missing key is one line, never a prompt. Each
peer gets one multiplexed control connection (ControlMaster, its socket in a private directory
of this process, closed at exit; the master dies with the recording, parent-death signal).

Everything left on a peer is tied to that connection: a *keeper* session makes the recording's
temporary directory, prints it and removes it when its standard input reaches end of file, and
every sender runs under a wrapper that stops it (SIGINT, then SIGKILL) at the same end of file.
When the recording ends — normally, by Ctrl-C, SIGTERM or SIGKILL — the connection goes away,
sshd closes those inputs, and the peer cleans itself up; nothing relies on a remote kill alone.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from zcrxprof import children
from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.loadgen import LoadgenProcess

CONNECT_TIMEOUT_S = 10        # ssh ConnectTimeout and the wait for the control connection
COMMAND_TIMEOUT_S = 30        # one short remote command (preflight, copy)
# ssh keep-alives where the ssh configuration sets none (ServerAliveInterval 0): ask a silent peer
# after 2 s, drop the connection after 3 unanswered asks, so a peer cut off is noticed within 8 s
ALIVE_DEFAULT = (2, 3)        # (ServerAliveInterval, ServerAliveCountMax)
CONTROL_PREFIX = "zcrxprof-ssh-"   # + the recording's pid + "-": its ssh control sockets, in the temp directory
CLOCK_SAMPLES = 7             # clock-offset probes; the one with the shortest round trip counts
KEY_HINT = ("set up key login first: ssh-keygen, then ssh-copy-id {dest} "
            "(and answer the host-key question once with a plain `ssh {dest}`)")
START_MARK = "zcrxprof-peer-start"
ELF_MACHINES = {3: "i686", 62: "x86_64", 40: "armv7l", 183: "aarch64", 243: "riscv64", 21: "ppc64le", 22: "s390x"}
PEER_TEXT = re.compile(r"(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\d+))?")


@dataclass(frozen=True)
class PeerAddress:
    """``[USER@]HOST[:PORT]`` as given on the command line."""

    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port else text


def remove_stale_control_dirs() -> list[Path]:
    """Remove the ssh control directories of recordings that died (SIGKILL: they could not clean
    up; their ssh masters died with them); returns those removed. A live recording's stay."""
    removed = []
    for d in Path(tempfile.gettempdir()).glob(f"{CONTROL_PREFIX}*-*"):
        pid = d.name[len(CONTROL_PREFIX):].partition("-")[0]
        if d.is_dir() and pid.isdigit() and children.abandoned(d, int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def parse_peer(text: str) -> PeerAddress:
    """``[USER@]HOST[:PORT]`` → PeerAddress; anything else is a one-line usage error."""
    m = PEER_TEXT.fullmatch(text.strip())
    port = int(m.group("port")) if m and m.group("port") else None
    if not m or m.group("host").startswith("-") or (port is not None and not 1 <= port <= 65535):
        raise UsageError(f"--peer {text!r}: expected [USER@]HOST[:PORT]")
    return PeerAddress(m.group("host").strip("[]"), m.group("user"), port)


def parse_peers(values: list[str]) -> list[PeerAddress]:
    """Every ``--peer`` and comma-separated ``--peers`` value, in order, duplicates refused."""
    peers = [parse_peer(v) for value in values for v in value.split(",") if v.strip()]
    if len(set(map(str, peers))) != len(peers):
        raise UsageError("--peer: a peer is given twice")
    return peers


def elf_arch(binary: str | Path) -> str:
    """The architecture (``uname -m`` spelling) an ELF executable is built for."""
    head = Path(binary).read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        raise ZcrxprofError(f"{binary} is not an ELF executable")
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"), f"elf-machine-{head[18]}")


def elf_interpreter(binary: str | Path) -> str | None:
    """The program interpreter (``PT_INTERP``, e.g. ``/lib64/ld-linux-x86-64.so.2``) an ELF
    executable names, or None for a static one."""
    data = Path(binary).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise ZcrxprofError(f"{binary} is not an ELF executable")
    wide, order = data[4] == 2, "little" if data[5] == 1 else "big"

    def num(at: int, size: int) -> int:
        return int.from_bytes(data[at:at + size], order)

    phoff, entsize, count = (num(32, 8), num(54, 2), num(56, 2)) if wide else (num(28, 4), num(42, 2), num(44, 2))
    for i in range(count):
        ph = phoff + i * entsize
        if num(ph, 4) == 3:                                      # PT_INTERP
            off, size = (num(ph + 8, 8), num(ph + 32, 8)) if wide else (num(ph + 4, 4), num(ph + 16, 4))
            return data[off:off + size].rstrip(b"\0").decode(errors="replace")
    return None


def check_static(binary: str | Path) -> None:
    """Refuse (one line) a load generator that needs a dynamic loader: a peer may lack its libraries."""
    interp = elf_interpreter(binary)
    if interp is not None:
        raise ZcrxprofError(f"{binary} is dynamically linked (interpreter {interp}); peers get the static "
                            "build: make -C loadgen")


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def spread(connections: int, peers: int) -> list[int]:
    """Connections per peer: ``connections`` (at least one per peer) shared as evenly as possible,
    the first peers taking the remainder."""
    total = max(connections, peers)
    return [total // peers + (1 if i < total % peers else 0) for i in range(peers)]


def _one_line(stderr: str, dest: str) -> str:
    """The ssh failure as one line, with how to fix it where the cause is known."""
    text = stderr.strip()
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
        if "CHANGED" in text:
            return f"peer {dest}: its host key changed (not the one in known_hosts); check the host, then ssh-keygen -R it"
        return f"peer {dest}: host key not known; connect once with `ssh {dest}` to accept it"
    if "Permission denied" in text:
        return f"peer {dest}: key login refused; " + KEY_HINT.format(dest=dest)
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith(("@", "Warning:"))]
    return f"peer {dest}: ssh failed: {(lines or ['no output'])[-1]}"


@dataclass
class Peer:
    """One remote host: its control connection, temp directory, deployed binary and facts."""

    address: PeerAddress
    control_path: str            # the control socket, in a private directory (one per peer as given)
    ssh_config: str | None = None
    peer_dir: str | None = None
    facts: dict = field(default_factory=dict)      # the preflight, recorded in the dataset
    remote_dir: str = ""
    master: subprocess.Popen | None = None
    keeper: subprocess.Popen | None = None
    clock_offset_s: float = 0.0                    # peer clock − this clock
    alive: tuple[int, int] = ALIVE_DEFAULT         # keep-alives: the ssh configuration's, else ALIVE_DEFAULT

    @property
    def lost_after_s(self) -> int:
        """Seconds of silence after which ssh drops the connection to this peer."""
        interval, count = self.alive
        return interval * (count + 1)

    @property
    def sender_name(self) -> str:
        """The name of this peer's sender in a run (its records, its problems)."""
        return f"sender@{self.dest}"

    @property
    def dest(self) -> str:
        return str(self.address)

    def ssh_argv(self, *extra: str, script: str | None = None) -> list[str]:
        """``ssh`` with batch mode, the control socket and the address (``extra``: more options),
        running ``script`` with sh on the peer if given, over the control connection."""
        argv = ["ssh"] + (["-F", self.ssh_config] if self.ssh_config else [])
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                 "-o", f"ServerAliveInterval={self.alive[0]}", "-o", f"ServerAliveCountMax={self.alive[1]}",
                 "-o", f"ControlPath={self.control_path}", "-o", "ClearAllForwardings=yes",
                 "-o", "ForwardAgent=no"]
        if self.address.user:
            argv += ["-l", self.address.user]
        if self.address.port:
            argv += ["-p", str(self.address.port)]
        argv += list(extra)
        if script is not None:
            argv += ["-o", "ControlMaster=no"]
        argv += ["--", self.address.host]
        return argv + (["sh -c " + shlex.quote(script)] if script is not None else [])

    # ---- the control connection --------------------------------------------------------------

    def configured_keepalive(self) -> tuple[int, int]:
        """(ServerAliveInterval, ServerAliveCountMax) as the ssh configuration sets them for this
        peer (``ssh -G``), or ALIVE_DEFAULT where it sets no keep-alive."""
        argv = ["ssh"] + (["-F", self.ssh_config] if self.ssh_config else []) + ["-G"]
        argv += (["-l", self.address.user] if self.address.user else [])
        argv += (["-p", str(self.address.port)] if self.address.port else []) + ["--", self.address.host]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        options = dict(line.split(None, 1) for line in res.stdout.splitlines() if " " in line)
        try:
            interval, count = int(options["serveraliveinterval"]), int(options["serveralivecountmax"])
        except (KeyError, ValueError):      # a configuration ssh refuses: connect() says what is wrong
            return ALIVE_DEFAULT
        return (interval, count) if interval > 0 else ALIVE_DEFAULT

    def connect(self) -> None:
        """Open the control connection (one line on failure: unreachable, key, host key)."""
        self.alive = self.configured_keepalive()
        errors = tempfile.TemporaryFile(mode="w+")
        self.master = children.start(self.ssh_argv("-M", "-N", "-o", "ControlMaster=yes",
                                                   "-o", "ControlPersist=no"),
                                     die_with_parent=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S + 5
        while time.monotonic() < deadline:
            if self.master.poll() is not None:
                errors.seek(0)
                raise ZcrxprofError(_one_line(errors.read(), self.dest))
            check = subprocess.run(self.ssh_argv("-O", "check"), capture_output=True, text=True)
            if check.returncode == 0:
                errors.close()
                return
            time.sleep(0.1)
        errors.close()
        raise ZcrxprofError(f"peer {self.dest}: no connection within {CONNECT_TIMEOUT_S + 5} s")

    def run(self, script: str, stdin: bytes | None = None, timeout: float = COMMAND_TIMEOUT_S) -> str:
        """Run a shell script on the peer over the control connection; its stdout (one line on failure)."""
        try:
            res = subprocess.run(self.ssh_argv(script=script),
                                 input=stdin if stdin is not None else b"", capture_output=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ZcrxprofError(f"peer {self.dest}: a command took over {timeout:g} s") from None
        if res.returncode != 0:
            err = res.stderr.decode(errors="replace").strip().splitlines()
            raise ZcrxprofError(f"peer {self.dest}: {(err or [f'exit status {res.returncode}'])[-1]}")
        return res.stdout.decode(errors="replace")

    # ---- preflight and deploy ----------------------------------------------------------------

    def preflight(self, arch: str, receiver: str | None = None) -> dict:
        """Host facts, the route back to this machine (to ``receiver``, default the address the
        SSH session came from), and a refusal for a wrong architecture."""
        out = self.run(PREFLIGHT_SCRIPT)
        facts = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        conn = facts.pop("ssh_connection", "").split()
        if len(conn) < 3:
            raise ZcrxprofError(f"peer {self.dest}: cannot tell this machine's address from the peer (no SSH_CONNECTION)")
        if facts.get("arch") != arch:
            raise ZcrxprofError(f"peer {self.dest}: architecture {facts.get('arch') or '?'}, the load generator "
                                f"is built for {arch}; use a peer of the same architecture")
        receiver = receiver or conn[0]
        route = self.run(ROUTE_SCRIPT.format(addr=shlex.quote(receiver)))
        facts.update(dict(line.split("=", 1) for line in route.splitlines() if "=" in line))
        self.facts = {"peer": self.dest, "hostname": facts.get("hostname", ""), "kernel": facts.get("kernel", ""),
                      "arch": facts.get("arch", ""), "cpu_model": facts.get("cpu_model", ""),
                      "cpus": int(facts.get("cpus") or 0), "receiver_address": receiver,
                      "peer_address": conn[2], "nic": facts.get("dev", ""),
                      "driver": facts.get("driver", "") or _link_kind(facts.get("link", "")),
                      "mtu": int(facts.get("mtu") or 0)}
        return self.facts

    def measure_clock(self) -> dict:
        """Clock offset (peer − here) from the round trip with the shortest time."""
        best = None
        for _ in range(CLOCK_SAMPLES):
            t0 = time.time()
            remote = float(self.run("date +%s.%N").strip())
            t1 = time.time()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, remote - (t0 + t1) / 2)
        self.clock_offset_s = best[1]
        self.facts.update(clock_offset_s=round(best[1], 6), clock_rtt_s=round(best[0], 6))
        return self.facts

    def open_dir(self) -> str:
        """Start the keeper session: it makes the temp directory and removes it at end of input."""
        base = shlex.quote(self.peer_dir) if self.peer_dir else '"${TMPDIR:-/tmp}"'
        script = (f'd=$(mktemp -d {base}/zcrxprof-XXXXXX 2>/dev/null) && [ -w "$d" ] || exit 3; '
                  'echo "$d"; cat >/dev/null; rm -rf "$d"')
        self.keeper = children.start(self.ssh_argv(script=script),
                                     die_with_parent=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        line = self.keeper.stdout.readline().decode(errors="replace").strip()
        if not line.startswith("/"):
            where = self.peer_dir or "$TMPDIR or /tmp"
            raise ZcrxprofError(f"peer {self.dest}: no writable temporary directory in {where} (--peer-dir DIR)")
        self.remote_dir = line
        return line

    def deploy(self, binary: str | Path, digest: str) -> str:
        """Copy the load generator into the temp directory (kept when its SHA-256 matches)."""
        target = f"{self.remote_dir}/zcrx-loadgen"
        have = self.run(f"sha256sum {shlex.quote(target)} 2>/dev/null || true").split()
        if not have or have[0] != digest:
            self.run(f"cat > {shlex.quote(target)} && chmod 700 {shlex.quote(target)}",
                     stdin=Path(binary).read_bytes(), timeout=120)
            have = self.run(f"sha256sum {shlex.quote(target)}").split()
            if not have or have[0] != digest:
                raise ZcrxprofError(f"peer {self.dest}: the copied load generator's SHA-256 does not match")
        self.facts["loadgen_sha256"] = digest
        return target

    # ---- senders -----------------------------------------------------------------------------

    def sender_command(self, args: list[str]) -> str:
        """The remote shell command: the wrapper around ``zcrx-loadgen ARGS``."""
        loadgen = shlex.join([f"{self.remote_dir}/zcrx-loadgen", *args])
        return WRAPPER.format(mark=START_MARK, loadgen=loadgen)

    def start_sender(self, args: list[str], name: str) -> LoadgenProcess:
        """Start a sender on the peer; its records come back on the ssh session's stdout."""
        argv = self.ssh_argv(script=self.sender_command(args))
        proc = LoadgenProcess.from_argv(argv, die_with_parent=True, name=name, stdin=subprocess.PIPE)
        proc.host = self.dest
        return proc

    def lost(self) -> bool:
        """Whether the control connection is gone while the recording runs (its ssh exited: the
        peer stopped answering keep-alives for ``lost_after_s``, or closed the connection)."""
        return self.master is not None and self.master.poll() is not None

    # ---- clean-up ----------------------------------------------------------------------------

    def close(self) -> None:
        """End the keeper (the peer removes the temp directory) and the control connection."""
        if self.keeper is not None:
            try:
                self.keeper.stdin.close()
            except OSError:
                pass
            try:
                self.keeper.wait(timeout=CONNECT_TIMEOUT_S)     # the peer removes the directory
            except subprocess.TimeoutExpired:
                children.kill_group(self.keeper)
            self.keeper.stdout.close()
            self.keeper = None
        if self.master is not None:
            subprocess.run(self.ssh_argv("-O", "exit"), capture_output=True, timeout=COMMAND_TIMEOUT_S)
            children.stop(self.master, 5, sig=signal.SIGTERM)
            self.master = None


def start_time(sender: LoadgenProcess) -> float | None:
    """The peer's wall clock (its own clock) when the wrapper started the load generator."""
    for line in sender.stderr_text().splitlines():
        if line.startswith(START_MARK):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def _link_kind(link: str) -> str:
    """A virtual link's kind from ``ip -d -o link show`` (veth, bridge, …), empty if none is named."""
    m = re.search(r"\s(veth|bridge|vlan|macvlan|ipvlan|bond|vxlan|dummy|tun|geneve|wireguard)\s", f" {link} ")
    return m.group(1) if m else ""


PREFLIGHT_SCRIPT = r"""
echo "hostname=$(uname -n)"
echo "kernel=$(uname -r)"
echo "arch=$(uname -m)"
echo "cpus=$(getconf _NPROCESSORS_ONLN)"
echo "cpu_model=$(sed -n 's/^model name[^:]*: *//p' /proc/cpuinfo | head -n 1)"
echo "ssh_connection=$SSH_CONNECTION"
"""

ROUTE_SCRIPT = r"""
dev=$(ip -o route get {addr} 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p')
echo "dev=$dev"
[ -n "$dev" ] || exit 0
echo "mtu=$(cat /sys/class/net/$dev/mtu 2>/dev/null)"
drv=$(readlink /sys/class/net/$dev/device/driver 2>/dev/null); echo "driver=${{drv##*/}}"
echo "link=$(ip -d -o link show dev $dev 2>/dev/null)"
"""

# The load generator in the background with stdin from /dev/null; a watcher on the session's
# stdin (fd 3) stops it when the connection goes away. The watcher does not hold the session's
# output, so the session ends as soon as the load generator does.
WRAPPER = r"""exec 3<&0 </dev/null
echo "{mark} $(date +%s.%N)" >&2
{loadgen} &
p=$!
{{ while read -r _ <&3; do :; done; kill -INT $p 2>/dev/null; sleep 3; kill -KILL $p 2>/dev/null; }} >/dev/null 2>&1 &
w=$!
wait $p
s=$?
kill $w 2>/dev/null
exit $s"""


def open_peers(stack, addresses: list[PeerAddress], binary: str | Path, *, ssh_config: str | None = None,
               peer_dir: str | None = None, receiver_address: str | None = None) -> list[Peer]:
    """Connect to every peer, check it, make its temp directory and deploy the load generator.

    Each step is done for all peers before the next, so a refusal (a load generator that is not
    static, unreachable, key, host key, architecture, no writable directory) comes before anything
    was copied or started anywhere.
    ``stack`` (an ExitStack) closes every connection and removes every directory.
    ``receiver_address``: the address the senders connect to (``--backend zcrx``: the NIC's);
    default: the one each peer's SSH session came from.
    """
    check_static(binary)
    control = tempfile.TemporaryDirectory(prefix=f"{CONTROL_PREFIX}{os.getpid()}-")      # mode 0700
    stack.callback(control.cleanup)
    children.claim(control.name)              # ours while we live (remove_stale_control_dirs)
    stack.callback(children.release, control.name)
    peers = [Peer(a, f"{control.name}/{i}", ssh_config, peer_dir) for i, a in enumerate(addresses)]
    steps = [{} for _ in peers]                  # per peer: seconds each set-up step took

    def timed(i: int, step: str, call, *args) -> None:
        t = time.monotonic()
        call(*args)
        steps[i][step] = steps[i].get(step, 0.0) + time.monotonic() - t

    for i, peer in enumerate(peers):
        stack.callback(peer.close)
        timed(i, "connect", peer.connect)
    arch, digest = elf_arch(binary), sha256(binary)
    for i, peer in enumerate(peers):
        timed(i, "preflight", peer.preflight, arch, receiver_address)
    for i, peer in enumerate(peers):
        timed(i, "deploy", peer.open_dir)
    for i, peer in enumerate(peers):
        timed(i, "deploy", peer.deploy, binary, digest)
        timed(i, "clock", peer.measure_clock)
    for peer, took in zip(peers, steps):
        peer.facts.update(setup_s=round(sum(took.values()), 4),
                          setup_steps_s={k: round(v, 4) for k, v in took.items()},
                          lost_after_s=peer.lost_after_s)
    return peers


def listen_address(peers: list[Peer]) -> str:
    """The address the receiver listens on: the one every peer reaches this machine by, or any."""
    seen = {p.facts["receiver_address"] for p in peers}
    return seen.pop() if len(seen) == 1 else ("::" if any(":" in a for a in seen) else "0.0.0.0")
