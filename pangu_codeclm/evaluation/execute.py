"""Sandboxed execution of generated programs through a warm fork server.

`Executor` starts this file as a fresh Python process (never a fork of a process that holds MindSpore threads). The
server imports the usual heavy modules once, enters a new network namespace (as `unshare -n`) and, as root, a mount
namespace with a private size-capped tmpfs for the work dirs. Each program gets one forked child: a new session,
rlimits (address space, CPU seconds, processes, file size, open files; clamped to the hard limits), a fresh temp cwd
(removed afterwards), a fixed minimal environment (`SANDBOX_ENV`: nothing of the evaluator's is inherited), stdin on
/dev/null, captured and bounded stdout/stderr, and an audit hook that refuses writes outside its cwd, signals to other
processes and socket connects. As root, each worker slot runs programs under its own unprivileged uid (a block of
uids locked per server), so the process limit counts exactly one job and a final kill(-1) from that uid sweeps
whatever the program left behind; without root, a supervisor process sits between the server and the program. On
timeout the whole process group (and the slot's uid) is killed. Without root a program also runs as the evaluator's
user and can read what that user can (its files, /proc/<evaluator pid>/environ): only root gets private uids.

A program passes only if its code ran to the end, no thread outlived it, and it then wrote the job's random nonce to a
private pipe: `sys.exit(0)`, `os._exit(0)`, signals or a killed parent before the tests finish all count as failures.
This file uses only the standard library so the server can run it as a script.
"""
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

logger = logging.getLogger(__name__)

DEFAULT_PRELOAD = ("math", "re", "sys", "copy", "datetime", "itertools", "collections", "heapq", "statistics",
                   "functools", "hashlib", "string", "typing", "random", "bisect", "operator", "fractions", "decimal",
                   "cmath", "array", "json", "ctypes", "numpy")
DEFAULT_LIMITS = {"address_space": 4 << 30, "cpu_seconds": None, "processes": 64, "file_size": 64 << 20,
                  "open_files": 256, "output_bytes": 1 << 20, "scratch_bytes": 1 << 30}
STATUSES = ("passed", "failed", "timed_out", "exited_early", "killed", "output_limit", "thread_left", "error")
_HEADER = struct.Struct(">Q")
_UID_FIRST, _UID_BLOCK, _UID_BLOCKS = 200000, 256, 4096  # private uids: one block of 256 per running server
_UID_LOCK_DIR = "/tmp/.pangu_codeclm_exec_uids"
# A program's whole environment: nothing of the evaluator's (its API keys, cloud credentials and hub tokens live
# there). HOME, TMPDIR, TMP and TEMP are set per program to its work dir. The server starts from this environment too
# (so the memory its children inherit holds no secret), plus only what the interpreter needs to start and find its
# modules, when the evaluator sets it: SERVER_INHERITED.
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONUTF8": "1",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SERVER_INHERITED = ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH")


class ExecutorError(RuntimeError):
    """The execution server died or answered something unexpected."""


# ---------------------------------------------------------------- framing (both sides)

def _send(fd, obj):
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


def _recv(fd):
    header = _recv_exact(fd, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(fd, _HEADER.unpack(header)[0])
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))


# ---------------------------------------------------------------- client

class Executor:
    """Run programs in the sandbox: `with Executor(workers=4, timeout=5) as ex: results = ex.run(programs)`.

    Each result is a dict: status (one of STATUSES), passed (bool), detail, exit_code, stdout, stderr, seconds.
    Results come back in input order and do not depend on the worker count.
    """

    def __init__(self, workers=1, timeout=5.0, limits=None, network=False, preload=DEFAULT_PRELOAD,
                 sandbox_user=True, guard=True, tmp_root=None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        unknown = set(limits or {}) - set(DEFAULT_LIMITS)
        if unknown:
            raise ValueError(f"unknown limit(s) {sorted(unknown)}; expected some of {sorted(DEFAULT_LIMITS)}")
        self.workers = int(workers)
        self.timeout = float(timeout)
        self.limits = dict(DEFAULT_LIMITS, **(limits or {}))
        self.config = {"workers": self.workers, "limits": self.limits, "network": bool(network),
                       "preload": list(preload), "sandbox_user": bool(sandbox_user), "guard": bool(guard),
                       "tmp_root": tmp_root, "scratch": None}
        self._proc = None
        self._lock = threading.Lock()
        self.info = {}

    def start(self):
        """Start the fork server (a fresh interpreter running this file) and wait until it is ready."""
        if self._proc is not None:
            return self
        if self.config["tmp_root"] is None:  # a private scratch dir; the server mounts a size-capped tmpfs on it
            import tempfile
            self.config["scratch"] = tempfile.mkdtemp(prefix="pangu_exec_scratch_")
            os.chmod(self.config["scratch"], 0o711)
        env = dict(SANDBOX_ENV, **{name: os.environ[name] for name in SERVER_INHERITED if name in os.environ})
        self._proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=env, close_fds=True, start_new_session=True)
        _send(self._proc.stdin.fileno(), self.config)
        hello = _recv(self._proc.stdout.fileno())
        if not hello or hello.get("ready") is not True:
            raise ExecutorError(f"execution server failed to start: {self._stderr_tail()}")
        self.info = hello
        for warning in hello.get("warnings", []):
            logger.warning("executor: %s", warning)
        logger.info("executor ready: %d worker(s), network %s, sandbox uid %s, preloaded %d modules",
                    self.workers, hello.get("network"), hello.get("sandbox_uid"), len(hello.get("preloaded", [])))
        return self

    def _stderr_tail(self):
        try:
            self._proc.kill()
            return self._proc.stderr.read()[-2000:].decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - best effort diagnostics
            return "(no stderr)"

    def run(self, programs, timeout=None, progress=None):
        """Execute each program string; returns a list of result dicts in the same order."""
        programs = list(programs)
        if not programs:
            return []
        self.start()
        timeout = float(timeout or self.timeout)
        results = [None] * len(programs)
        with self._lock:
            writer_error = []

            def feed():
                try:
                    for index, program in enumerate(programs):
                        _send(self._proc.stdin.fileno(), {"id": index, "program": program, "timeout": timeout})
                except OSError as exc:
                    writer_error.append(exc)

            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            for _ in programs:
                message = _recv(self._proc.stdout.fileno())
                if message is None:
                    raise ExecutorError(f"execution server died: {self._stderr_tail()}")
                results[message.pop("id")] = message
                if progress is not None:
                    progress(message)
            writer.join()
            if writer_error:
                raise ExecutorError(f"could not send programs to the execution server: {writer_error[0]}")
        return results

    def close(self):
        """Stop the server (it kills any program still running and removes its temp dirs)."""
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._proc.stderr.close()
        self._proc = None
        if self.config["scratch"]:
            import shutil
            shutil.rmtree(self.config["scratch"], ignore_errors=True)
            self.config["scratch"] = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def run_programs(programs, workers=1, timeout=5.0, **kwargs):
    """One-shot helper: start an executor, run `programs`, stop it."""
    with Executor(workers=workers, timeout=timeout, **kwargs) as executor:
        return executor.run(programs)


# ---------------------------------------------------------------- server side

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


def _set_rlimit(resource, kind, value):
    if value is None:
        return
    soft, hard = resource.getrlimit(kind)
    value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
    resource.setrlimit(kind, (value, value))


def _install_guard(workdir):
    """Audit hook: refuse writes/removals outside `workdir`, signals to other processes and socket connects."""
    import sys as _sys
    root = os.path.realpath(workdir) + os.sep
    own_pid, own_pgid = os.getpid(), os.getpgid(0)
    realpath, fspath = os.path.realpath, os.fspath
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    path_events = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.chmod": 1, "os.chown": 1, "os.truncate": 1,
                   "os.utime": 1, "shutil.rmtree": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2}

    def inside(path):
        if isinstance(path, int):
            return True
        try:
            resolved = realpath(fspath(path))
        except TypeError:
            return False
        return resolved == root[:-1] or resolved.startswith(root) or resolved == "/dev/null"

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & write_flags)
            if writing and path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing outside the work dir is not allowed: {path}")
        elif event in path_events:
            for path in args[:path_events[event]]:
                if not inside(path):
                    raise PermissionError(f"sandbox: {event} outside the work dir is not allowed: {path}")
        elif event == "os.kill":
            if args[0] not in (0, own_pid):
                raise PermissionError(f"sandbox: signalling process {args[0]} is not allowed")
        elif event == "os.killpg":
            if args[0] not in (0, own_pgid):
                raise PermissionError(f"sandbox: signalling process group {args[0]} is not allowed")
        elif event in ("socket.connect", "socket.bind", "socket.sendto"):
            raise PermissionError("sandbox: network access is not allowed")

    _sys.addaudithook(hook)


_PATH_FD_BASE = 50
_PATH_FDS = 0


def _route_imports_through_fds():
    """Make sys.path and every loaded package's __path__ go through directory fds (/proc/self/fd/N, N fixed).

    Run once in the server: forked programs inherit both the fds and the rewritten paths, so after dropping to a
    private uid they can still import from directories below an unreadable parent (/root is 0700 on many hosts).
    """
    global _PATH_FDS
    mapping = {}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and entry.rstrip(os.sep) not in mapping:
            fd = _PATH_FD_BASE + len(mapping)
            opened = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
            os.dup2(opened, fd, inheritable=False)
            os.close(opened)
            mapping[entry.rstrip(os.sep)] = f"/proc/self/fd/{fd}"
    _PATH_FDS = len(mapping)
    sys.path[:] = list(mapping.values())
    sys.path_importer_cache.clear()
    roots = sorted(mapping, key=len, reverse=True)
    for module in list(sys.modules.values()):  # already imported packages: their submodules load from __path__
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            for i, path in enumerate(search):
                root = next((r for r in roots if path == r or path.startswith(r + os.sep)), None)
                if root is not None:
                    search[i] = mapping[root] + path[len(root):]


def _enter_private_uid(uid):
    """Become `uid` for good (imports keep working through the server's path fds)."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    _LIBC.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: keep /proc/self (and the path fds) usable after the uid change
    _LIBC.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no way back to root through setuid binaries


def _program_main(program, nonce, status_fd, out_fd, err_fd, workdir, uid, limits, timeout, guard, new_session):
    """Body of the program process (never returns)."""
    code = 70
    try:
        import resource
        if new_session:
            os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(status_fd, 3)
        os.closerange(4, _PATH_FD_BASE)
        os.closerange(_PATH_FD_BASE + _PATH_FDS, 1 << 16)
        os.chdir(workdir)
        os.environ.clear()  # the server's (already minimal) environment is replaced, not extended
        os.environ.update(SANDBOX_ENV, HOME=workdir, TMPDIR=workdir, TMP=workdir, TEMP=workdir)
        import tempfile
        tempfile.tempdir = workdir  # the server may have cached its own temp dir
        if uid is not None:
            _enter_private_uid(uid)
        _set_rlimit(resource, resource.RLIMIT_AS, limits["address_space"])
        _set_rlimit(resource, resource.RLIMIT_CPU, limits["cpu_seconds"] or int(timeout) + 1)
        _set_rlimit(resource, resource.RLIMIT_FSIZE, limits["file_size"])
        _set_rlimit(resource, resource.RLIMIT_NOFILE, limits["open_files"])
        _set_rlimit(resource, resource.RLIMIT_CORE, 0)
        if uid is not None:  # RLIMIT_NPROC counts per uid; with a private uid it bounds exactly this job
            _set_rlimit(resource, resource.RLIMIT_NPROC, limits["processes"])
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        if guard:
            _install_guard(workdir)
        scope = {"__name__": "__main__", "__builtins__": __builtins__}
        try:
            exec(compile(program, "<program>", "exec"), scope)  # noqa: S102 - this is the sandboxed runner
        except BaseException as exc:  # noqa: BLE001 - SystemExit included: exiting before the end is a failure
            import traceback
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
            code = 1
        else:
            try:
                tasks = len(os.listdir("/proc/self/task"))
            except OSError:
                tasks = threading.active_count()
            if tasks > 1:
                sys.stderr.write(f"sandbox: {tasks - 1} thread(s) still running after the program finished\n")
                code = 3
            else:
                os.write(3, nonce.encode("ascii"))
                code = 0
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        if uid is not None:  # every other process of this job's private uid: children, escapees from the group
            _LIBC.kill(-1, signal.SIGKILL)  # libc, not os.kill: the audit hook must not stop our own cleanup
        os._exit(code)


def _supervisor_main(job, workdir, uid, pipes, config):
    """Body of the supervisor (used without a private uid, where the program could signal its parent): new session,
    fork the program, wait, exit with its code (128 + signal if it was killed)."""
    code = 71
    try:
        os.setsid()
        pid = os.fork()
        if pid == 0:
            _program_main(job["program"], job["nonce"], pipes["status"], pipes["out"], pipes["err"], workdir, uid,
                          config["limits"], job["timeout"], config["guard"], new_session=False)
        for fd in pipes.values():
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else min(code, 127)
    finally:
        os._exit(code)


_LIBC = None


def _kill_uid(uid):
    """Kill every process owned by `uid` (from a short-lived child that takes that uid)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


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
                _kill_uid(base + slot)
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
                _supervisor_main(job, workdir, uid, writes, self.config)
            _program_main(job["program"], job["nonce"], writes["status"], writes["out"], writes["err"], workdir,
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
            _kill_uid(state["uid"])  # the program could not sweep its uid itself
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
        _send(1, {"id": job["id"], "status": result, "passed": result == "passed", "detail": detail,
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
                    message = _recv(0)
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
    config = _recv(0)
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
    global _LIBC
    import ctypes
    import gc
    import resource  # noqa: F401 - used by every program process
    _LIBC = ctypes.CDLL(None, use_errno=True)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    server = _Server(config)
    if server.root_user:
        _route_imports_through_fds()
    gc.collect()
    gc.freeze()  # forked programs' collections skip the preloaded objects: fewer copy-on-write page faults
    network = "allowed" if config["network"] else ("isolated" if not any("network namespace" in w for w in warnings)
                                                     else "not isolated")
    _send(1, {"ready": True, "warnings": warnings, "preloaded": preloaded, "network": network,
              "sandbox_uid": server.uid_base if server.root_user else None, "pid": os.getpid()})
    server.serve()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
