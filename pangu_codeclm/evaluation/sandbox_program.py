"""One sandboxed program: the process the fork server forks per job, and what it does before the program runs.

The program gets a new session, rlimits (address space, CPU seconds, processes, file size, open files; clamped to the
hard limits), a fresh temp cwd, a fixed minimal environment (`SANDBOX_ENV`: nothing of the evaluator's is inherited),
stdin on /dev/null, stdout/stderr on the server's capture pipes, and an audit hook that refuses writes outside its
cwd, signals to other processes and socket connects. As root it runs under its worker slot's private uid (its
imports keep working through the server's directory fds); without root a supervisor process sits between the server
and the program. It passes only if its code ran to the end, no thread outlived it, and it then wrote the job's nonce
to fd 3. Standard library only: the server loads this file without the package.
"""
import os
import signal
import sys
import threading

# A program's whole environment: nothing of the evaluator's (its API keys, cloud credentials and hub tokens live
# there). HOME, TMPDIR, TMP and TEMP are set per program to its work dir. The server starts from this environment too
# (so the memory its children inherit holds no secret), plus only what the interpreter needs to start and find its
# modules, when the evaluator sets it (`execute.SERVER_INHERITED`).
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONUTF8": "1",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_LIBC = None


def load_libc():
    """libc through ctypes, loaded once in the server before it forks (programs call prctl and kill through it)."""
    global _LIBC
    import ctypes
    _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


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


def route_imports_through_fds():
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


def program_main(program, nonce, status_fd, out_fd, err_fd, workdir, uid, limits, timeout, guard, new_session):
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


def supervisor_main(job, workdir, uid, pipes, config):
    """Body of the supervisor (used without a private uid, where the program could signal its parent): new session,
    fork the program, wait, exit with its code (128 + signal if it was killed)."""
    code = 71
    try:
        os.setsid()
        pid = os.fork()
        if pid == 0:
            program_main(job["program"], job["nonce"], pipes["status"], pipes["out"], pipes["err"], workdir, uid,
                          config["limits"], job["timeout"], config["guard"], new_session=False)
        for fd in pipes.values():
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else min(code, 127)
    finally:
        os._exit(code)


def kill_uid(uid):
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
