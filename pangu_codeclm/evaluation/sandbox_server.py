"""The warm fork server the `execute.Executor` client talks to, run as a script in a fresh interpreter.

The server imports the usual heavy modules once, enters a new network namespace (as `unshare -n`) and, as root, a
mount namespace with a private size-capped tmpfs for the work dirs, then forks one sandboxed process per program
(`sandbox_program`), at most `workers` at a time. As root each worker slot runs programs under its own unprivileged
uid (a block of uids locked per server), so the process limit counts exactly one job and a final kill(-1) from that
uid sweeps whatever the program left behind. On timeout the whole process group (and the slot's uid) is killed; the
temp cwd is removed after each job. Messages both ways are length-prefixed JSON (`send` / `recv`). Standard library
only, so it runs without the package.
"""
import json
import os
import select
import signal
import struct
import sys
import time

try:
    from . import sandbox_program as program
except ImportError:  # run as a script by the client: the package is not imported, the sibling file is on sys.path
    import sandbox_program as program

_HEADER = struct.Struct(">Q")
_UID_FIRST, _UID_BLOCK, _UID_BLOCKS = 200000, 256, 4096  # private uids: one block of 256 per running server
_UID_LOCK_DIR = "/tmp/.pangu_codeclm_exec_uids"


def send(fd, obj):
    data = json.dumps(obj).encode("utf-8")
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _recv_exact(fd, size):
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv(fd):
    header = _recv_exact(fd, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(fd, _HEADER.unpack(header)[0])
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))


def _drop_network():
    """Move this process into a new, empty network namespace (what `unshare -n` does); return a warning or None."""
    import ctypes
    clone_newnet, clone_newuser = 0x40000000, 0x10000000
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(clone_newnet) == 0:
        return None
    if os.getuid() != 0 and libc.unshare(clone_newuser | clone_newnet) == 0:
        return None
    return (f"cannot create a network namespace ({os.strerror(ctypes.get_errno())}): programs keep network access;"
            f" only the audit hook refuses socket connects")


def _mount_scratch(path, size):
    """Mount a private tmpfs of `size` bytes on `path` in a new mount namespace; return a warning or None.

    Work dirs then live in memory (fast to create and remove), a program cannot fill the host's disk, and nothing it
    writes is visible outside the server.
    """
    import ctypes
    clone_newns, ms_rec, ms_private, ms_nosuid, ms_nodev = 0x00020000, 0x4000, 0x40000, 0x2, 0x4
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(clone_newns) != 0:
        return f"no private mount namespace ({os.strerror(ctypes.get_errno())}): work dirs live on disk under {path}"
    if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0 or libc.mount(
            b"tmpfs", os.fsencode(path), b"tmpfs", ms_nosuid | ms_nodev, f"size={int(size)},mode=0711".encode()) != 0:
        return f"cannot mount a private tmpfs ({os.strerror(ctypes.get_errno())}): work dirs live on disk under {path}"
    return None


class _Server:
    def __init__(self, config):
        import secrets
        import shutil
        import tempfile
        self.secrets, self.shutil, self.tempfile = secrets, shutil, tempfile
        self.config = config
        self.workers = config["workers"]
        self.limit = int(config["limits"]["output_bytes"])
        self.queue = []
        self.running = {}
        self.free_slots = list(range(self.workers))
        self.stdin_open = True
        self.root_user = os.getuid() == 0 and config["sandbox_user"]
        self.uid_base = self._claim_uid_block() if self.root_user else None
        if self.workers > _UID_BLOCK and self.root_user:
            raise ValueError(f"at most {_UID_BLOCK} workers, got {self.workers}")
        self.tmp_root = config.get("tmp_root") or config.get("scratch") or tempfile.gettempdir()

    def _claim_uid_block(self):
        """A uid block no other live server uses (flock held for our lifetime); stale processes in it are killed."""
        import fcntl
        os.makedirs(_UID_LOCK_DIR, mode=0o700, exist_ok=True)
        for block in range(_UID_BLOCKS):
            fd = os.open(os.path.join(_UID_LOCK_DIR, f"{block}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.uid_lock = fd
            base = _UID_FIRST + block * _UID_BLOCK
            for slot in range(self.workers):
                program.kill_uid(base + slot)
            return base
        raise RuntimeError(f"all {_UID_BLOCKS} sandbox uid blocks are in use (locks in {_UID_LOCK_DIR})")

    def launch(self, job):
        slot = self.free_slots.pop(0)
        uid = self.uid_base + slot if self.root_user else None
        workdir = self.tempfile.mkdtemp(prefix="pangu_exec_", dir=self.tmp_root)
        if uid is not None:
            os.chown(workdir, uid, uid)
        job["nonce"] = self.secrets.token_hex(16)
        ends = {name: os.pipe() for name in ("out", "err", "status")}
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os.close(0)
            os.close(1)
            writes = {k: w for k, (_, w) in ends.items()}
            if uid is None:  # the program runs as our user: a supervisor in between keeps os.kill(getppid()) off us
                program.supervisor_main(job, workdir, uid, writes, self.config)
            program.program_main(job["program"], job["nonce"], writes["status"], writes["out"], writes["err"], workdir,
                          uid, self.config["limits"], job["timeout"], self.config["guard"], new_session=True)
        reads = {}
        for name, (r, w) in ends.items():
            os.close(w)
            os.set_blocking(r, False)
            reads[r] = name
        pidfd = os.pidfd_open(pid)
        self.running[pidfd] = dict(job=job, pid=pid, slot=slot, uid=uid, workdir=workdir, reads=reads,
                                   data={"out": bytearray(), "err": bytearray(), "status": bytearray()},
                                   start=time.monotonic(), deadline=time.monotonic() + job["timeout"],
                                   overflow=False, timed_out=False)

    def read_pipe(self, state, fd):
        name = state["reads"][fd]
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            os.close(fd)
            del state["reads"][fd]
            return
        if self._append(state, name, chunk):
            state["overflow"] = name
            self.kill(state)

    def _append(self, state, name, chunk):
        """Add `chunk` to the named capture up to its cap (64 bytes for the nonce); True if some did not fit."""
        buf = state["data"][name]
        room = (64 if name == "status" else self.limit) - len(buf)
        buf += chunk[:max(room, 0)]
        return len(chunk) > room

    def kill(self, state):
        try:
            os.killpg(state["pid"], signal.SIGKILL)
        except OSError:
            pass

    def finish(self, pidfd):
        state = self.running.pop(pidfd)
        self.kill(state)  # anything left in the session's process group
        _, status = os.waitpid(state["pid"], 0)
        code = os.waitstatus_to_exitcode(status)
        if state["uid"] is not None and (state["timed_out"] or state["overflow"] or code < 0):
            program.kill_uid(state["uid"])  # the program could not sweep its uid itself
        os.close(pidfd)
        for fd, name in list(state["reads"].items()):  # the program has exited: drain what it left, without blocking
            while fd in state["reads"]:
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    chunk = b""
                if not chunk:
                    os.close(fd)
                    del state["reads"][fd]
                else:
                    self._append(state, name, chunk)
        self.shutil.rmtree(state["workdir"], ignore_errors=True)
        self.free_slots.append(state["slot"])
        self.free_slots.sort()
        job, data = state["job"], state["data"]
        nonce_ok = bytes(data["status"]) == job["nonce"].encode("ascii")
        if state["timed_out"]:
            result, detail = "timed_out", f"killed after {job['timeout']:g} s"
        elif state["overflow"]:
            result, detail = "output_limit", f"{state['overflow']} exceeded {self.limit} bytes"
        elif code == 0 and nonce_ok:
            result, detail = "passed", ""
        elif code == 0 or code == 3:
            result = "thread_left" if code == 3 else "exited_early"
            detail = ("a thread outlived the program" if code == 3 else
                      "the program exited before its tests finished")
        elif code == 1:
            tail = bytes(data["err"]).decode("utf-8", "replace").strip().splitlines()
            result, detail = "failed", (tail[-1] if tail else "exception")
        elif code > 128 or code < 0:
            sig = code - 128 if code > 128 else -code
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            result, detail = "killed", f"killed by {name}"
        else:
            result, detail = "exited_early", f"exit code {code} before the tests finished"
        send(1, {"id": job["id"], "status": result, "passed": result == "passed", "detail": detail,
                  "exit_code": code, "seconds": round(time.monotonic() - state["start"], 4),
                  "stdout": bytes(data["out"]).decode("utf-8", "replace"),
                  "stderr": bytes(data["err"]).decode("utf-8", "replace")})

    def serve(self):
        while self.stdin_open or self.queue or self.running:
            while self.queue and self.free_slots:
                self.launch(self.queue.pop(0))
            now = time.monotonic()
            for state in self.running.values():
                if not state["timed_out"] and now >= state["deadline"]:
                    state["timed_out"] = True
                    self.kill(state)
            waits = [s["deadline"] - now for s in self.running.values() if not s["timed_out"]]
            fds = list(self.running)
            for state in self.running.values():
                fds.extend(state["reads"])
            if self.stdin_open:
                fds.append(0)
            ready, _, _ = select.select(fds, [], [], max(min(waits), 0) if waits else None)
            for fd in ready:
                if fd == 0:
                    message = recv(0)
                    if message is None:
                        self.stdin_open = False
                    else:
                        self.queue.append(message)
                    continue
                for pidfd, state in list(self.running.items()):
                    if fd in state["reads"]:
                        self.read_pipe(state, fd)
            for pidfd in [fd for fd in ready if fd in self.running]:
                self.finish(pidfd)


def _serve():
    config = recv(0)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # programs must not import our modules
    warnings = []
    if not config["network"]:
        warning = _drop_network()
        if warning:
            warnings.append(warning)
    if config.get("scratch") and os.getuid() == 0:
        warning = _mount_scratch(config["scratch"], config["limits"]["scratch_bytes"])
        if warning:
            warnings.append(warning)
    preloaded = []
    for name in config["preload"]:
        try:
            __import__(name)
            preloaded.append(name)
        except ImportError as exc:
            warnings.append(f"could not preload {name}: {exc}")
    if os.getuid() == 0 and not config["sandbox_user"]:
        warnings.append("sandbox_user=False while running as root: programs run as root (no process limit)")
    if os.getuid() != 0 and config["sandbox_user"]:
        warnings.append("not running as root: programs run as the evaluator's user (no private uid, no process "
                        "limit); the audit hook and rlimits still apply")
    import gc
    import resource  # noqa: F401 - used by every program process
    program.load_libc()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    server = _Server(config)
    if server.root_user:
        program.route_imports_through_fds()
    gc.collect()
    gc.freeze()  # forked programs' collections skip the preloaded objects: fewer copy-on-write page faults
    network = "allowed" if config["network"] else ("isolated" if not any("network namespace" in w for w in warnings)
                                                     else "not isolated")
    send(1, {"ready": True, "warnings": warnings, "preloaded": preloaded, "network": network,
              "sandbox_uid": server.uid_base if server.root_user else None, "pid": os.getpid()})
    server.serve()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
