"""The sandboxed executor: every hostile sample fails, is contained, and leaves the evaluator and the host intact."""
import ast
import os
import socket
import tempfile
import time

import pytest

from pangu_codeclm.evaluation.execute import Executor, ExecutorError, run_programs
from pangu_codeclm.evaluation.sandbox_program import SANDBOX_ENV

TIMEOUT = 1.0
SANITY = "def check(f):\n    assert f(2) == 4\ncheck(lambda x: x * 2)\n"


def _sandbox_processes(executor, wait=2.0):
    """Live (non-zombie) pids still owned by the executor's private uids, after up to `wait` s for the kernel to
    finish delivering the kills (empty when the executor has no private uid)."""
    base = executor.info.get("sandbox_uid")
    if base is None:
        return []
    uids = {str(base + slot) for slot in range(executor.workers)}
    deadline = time.monotonic() + wait
    while True:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            if fields.get("Uid", "").split()[:1] and fields["Uid"].split()[0] in uids \
                    and not fields.get("State", "").strip().startswith("Z"):
                found.append(int(pid))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("exec_root"))


@pytest.fixture(scope="module")
def executor(tmp_root):
    with Executor(workers=2, timeout=TIMEOUT, tmp_root=tmp_root, limits={"processes": 8}) as ex:
        yield ex


def _run_one(executor, program, timeout=None):
    result, sanity = executor.run([program, SANITY], timeout=timeout)
    assert sanity["passed"], f"the evaluator broke after a hostile sample: {sanity}"
    assert not _sandbox_processes(executor), "a sandboxed process outlived its job"
    assert not os.listdir(executor.config["tmp_root"]), "a temp work dir was left behind"
    return result


def test_plain_pass_and_fail(executor):
    ok, bad, crash = executor.run([SANITY, "assert 1 + 1 == 3", "raise ValueError('boom')"])
    assert ok["status"] == "passed" and ok["passed"] is True
    assert bad["status"] == "failed" and "AssertionError" in bad["detail"]
    assert crash["status"] == "failed" and "ValueError: boom" in crash["detail"]


def test_output_is_captured_and_stdin_is_closed(executor):
    printed, reads = executor.run(["print('hello')\nimport sys\nprint('oops', file=sys.stderr)", "input()"])
    assert printed["passed"] and printed["stdout"] == "hello\n" and printed["stderr"] == "oops\n"
    assert reads["status"] == "failed" and "EOFError" in reads["detail"]


def test_fresh_cwd_is_removed(executor, tmp_root):
    result = _run_one(executor, "import os\nopen('f.txt', 'w').write('x')\nprint(os.getcwd())")
    cwd = result["stdout"].strip()
    assert result["passed"] and os.path.dirname(cwd) == tmp_root and not os.path.exists(cwd)


def test_fork_bomb_is_contained(executor):
    if executor.info.get("sandbox_uid") is None:
        pytest.skip("the process limit needs a private uid (run as root)")
    result = _run_one(executor, "import os\nwhile True:\n    os.fork()\n")
    assert not result["passed"] and result["status"] in ("failed", "timed_out", "killed")
    swallowing = _run_one(executor,
                          "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    assert swallowing["status"] == "timed_out"


def test_rmtree_of_a_decoy_outside_the_work_dir_fails():
    decoy = tempfile.mkdtemp(prefix="decoy_")
    try:
        os.chmod(decoy, 0o777)  # writable by anyone: only the sandbox stands between the program and the decoy
        with open(os.path.join(decoy, "keep.txt"), "w") as f:
            f.write("precious")
        os.chmod(os.path.join(decoy, "keep.txt"), 0o666)
        program = f"import shutil, os\nshutil.rmtree({decoy!r})\nassert not os.path.exists({decoy!r})\n"
        result = run_programs([program], timeout=TIMEOUT)[0]
        assert not result["passed"] and "PermissionError" in result["detail"]
        unlink = run_programs([f"import os\nos.remove({os.path.join(decoy, 'keep.txt')!r})"], timeout=TIMEOUT)[0]
        assert not unlink["passed"]
        with open(os.path.join(decoy, "keep.txt")) as f:
            assert f.read() == "precious"
    finally:
        import shutil
        shutil.rmtree(decoy)


def test_infinite_loop_times_out(executor):
    start = time.monotonic()
    result = _run_one(executor, "while True:\n    pass\n")
    assert result["status"] == "timed_out"
    assert time.monotonic() - start < TIMEOUT + 5


def test_huge_allocation_fails(executor):
    result = _run_one(executor, "x = bytearray(50 * 2**30)\n")
    assert not result["passed"] and result["status"] in ("failed", "killed")


def test_socket_connect_to_localhost_fails(executor, tmp_root):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    program = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\ns.sendall(b'hi')\n"
    try:
        guarded = _run_one(executor, program)
        # without the audit hook the network namespace alone must stop it
        with Executor(workers=1, timeout=TIMEOUT, guard=False, tmp_root=tmp_root) as bare:
            unguarded = bare.run([program])[0]
            isolated = bare.info["network"] == "isolated"
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()
    assert not guarded["passed"] and "network" in guarded["detail"]
    if isolated:
        assert not unguarded["passed"] and unguarded["status"] == "failed"


def test_killing_the_parent_fails_and_the_server_survives(executor, tmp_root):
    result = _run_one(executor, "import os\nos.kill(os.getppid(), 9)\n")
    assert not result["passed"]
    with Executor(workers=1, timeout=TIMEOUT, guard=False, tmp_root=tmp_root) as bare:
        unguarded, sanity = bare.run(["import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(0.2)\n", SANITY])
    assert not unguarded["passed"] and sanity["passed"]


def test_printing_a_gigabyte_is_cut_off(executor):
    start = time.monotonic()
    result = _run_one(executor, "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n"
                                "    sys.stdout.write(chunk)\n")
    assert result["status"] == "output_limit"
    assert len(result["stdout"]) <= executor.limits["output_bytes"]
    assert time.monotonic() - start < TIMEOUT + 5


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "exit()", "quit()",
                                       "raise SystemExit"])
def test_exit_before_the_asserts_is_a_failure(executor, exit_call):
    program = f"def f(x):\n    return 0\n{exit_call}\nassert f(2) == 4\n"
    result = executor.run([program])[0]
    assert not result["passed"] and result["status"] in ("failed", "exited_early")


def test_exit_inside_check_is_a_failure(executor):
    program = "def f(x):\n    return 0\ndef check(candidate):\n    exit()\n    assert candidate(2) == 4\ncheck(f)\n"
    result = executor.run([program])[0]
    assert not result["passed"] and "SystemExit" in result["detail"]


def test_signal_handler_replacement_does_not_escape_the_timeout(executor):
    program = ("import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGXCPU, "
               "signal.SIGHUP):\n    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n")
    result = _run_one(executor, program)
    assert result["status"] == "timed_out"


def test_ten_gigabyte_file_is_stopped(executor):
    program = "with open('big.bin', 'wb') as f:\n    for _ in range(10240):\n        f.write(b'\\0' * (1 << 20))\n"
    result = _run_one(executor, program)
    assert not result["passed"] and result["status"] in ("killed", "failed")


def test_thread_outliving_the_program_fails(executor):
    program = ("import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
               "assert True\n")
    result = _run_one(executor, program)
    assert result["status"] == "thread_left" and not result["passed"]


def test_results_do_not_depend_on_worker_count(tmp_root):
    programs = [SANITY, "assert False", "import os\nos._exit(0)", "x = 1\n", "print(sum(range(10)))",
                "import numpy as np\nassert np.arange(4).sum() == 6", "1/0"]
    one = run_programs(programs, workers=1, timeout=TIMEOUT, tmp_root=tmp_root)
    three = run_programs(programs, workers=3, timeout=TIMEOUT, tmp_root=tmp_root)
    key = [(r["status"], r["detail"], r["stdout"]) for r in one]
    assert key == [(r["status"], r["detail"], r["stdout"]) for r in three]
    assert [r["passed"] for r in one] == [True, False, False, True, True, True, False]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="workers"):
        Executor(workers=0)
    with pytest.raises(ValueError, match="unknown limit"):
        Executor(limits={"memory": 1})
    assert issubclass(ExecutorError, RuntimeError)


def test_concurrent_executors_do_not_interfere(tmp_root):
    import threading
    program = "import time\ntime.sleep(0.01)\nassert sum(range(100)) == 4950\n"
    with Executor(workers=2, timeout=5.0, tmp_root=tmp_root) as a, \
            Executor(workers=2, timeout=5.0, tmp_root=tmp_root) as b:
        if a.info.get("sandbox_uid") is not None:
            assert abs(a.info["sandbox_uid"] - b.info["sandbox_uid"]) >= 2  # disjoint private uids
        out = {}
        threads = [threading.Thread(target=lambda ex=ex, k=k: out.__setitem__(k, ex.run([program] * 30)))
                   for k, ex in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(r["passed"] for r in out["a"] + out["b"]), {r["detail"] for r in out["a"] + out["b"]}


def test_supervisor_path_without_a_private_uid(tmp_root):
    """Without a private uid a supervisor sits between server and program: killing the parent kills only it."""
    with Executor(workers=1, timeout=TIMEOUT, guard=False, sandbox_user=False, tmp_root=tmp_root) as bare:
        killer, sanity, early = bare.run(["import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(1)\n", SANITY,
                                          "import os\nos._exit(0)\nassert False\n"])
    assert killer["status"] == "killed" and not killer["passed"]
    assert sanity["passed"] and early["status"] == "exited_early"


SECRET = "pangu-test-secret-4f1c9e"


def _environ_probe(secret, server_pid, beyond_server):
    """A program that fails if `secret` is in its os.environ or in the environ of itself or an ancestor up to the
    server (and, with `beyond_server`, of any ancestor it can read); it prints its environment's names."""
    return f"""import os
def parent(pid):
    with open(f"/proc/{{pid}}/status") as f:
        return int(next(line for line in f if line.startswith("PPid:")).split()[1])
pid, past_server = os.getpid(), False
while pid > 1 and (not past_server or {beyond_server!r}):
    try:
        with open(f"/proc/{{pid}}/environ", "rb") as f:
            assert {secret.encode()!r} not in f.read(), f"secret in /proc/{{pid}}/environ"
    except PermissionError:  # another uid's process: nothing to read, nothing leaked
        pass
    past_server = past_server or pid == {server_pid}
    pid = parent(pid)
assert past_server, "the server is not an ancestor"
assert {secret!r} not in repr(dict(os.environ))
print(sorted(os.environ))
"""


@pytest.mark.parametrize("sandbox_user", [True, False])
def test_programs_see_nothing_of_the_evaluators_environment(monkeypatch, tmp_root, sandbox_user):
    monkeypatch.setenv("PANGU_TEST_SECRET_TOKEN", SECRET)
    leak = "import os\nraise RuntimeError(os.environ.get('PANGU_TEST_SECRET_TOKEN'))\n"
    with Executor(workers=1, timeout=TIMEOUT, tmp_root=tmp_root, sandbox_user=sandbox_user) as ex:
        private_uid = ex.info.get("sandbox_uid") is not None  # then even the evaluator's own environ is unreadable
        raised, probe = ex.run([leak, _environ_probe(SECRET, ex.info["pid"], beyond_server=private_uid)])
    assert raised["status"] == "failed" and raised["detail"] == "RuntimeError: None"
    assert SECRET not in raised["stderr"] + raised["stdout"]
    assert probe["passed"], probe
    assert ast.literal_eval(probe["stdout"]) == sorted({*SANDBOX_ENV, "HOME", "TMPDIR", "TMP", "TEMP"})


def test_root_only_files_cannot_be_read(executor):
    if not os.path.exists("/etc/shadow"):
        pytest.skip("no /etc/shadow on this host")
    result = _run_one(executor, "print(open('/etc/shadow').read()[:8])")
    assert result["status"] == "failed" and "PermissionError" in result["detail"] and not result["stdout"]
