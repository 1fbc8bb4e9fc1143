"""HCCL rank tables: the CLI writes valid tables, malformed ones are rejected naming the field, and the distributed
launch script checks its arguments and the table before starting anything."""
import copy
import json
import os
import pathlib
import subprocess
import sys

import pytest

from pangu_codeclm.train.rank_table import RankTableError, build_rank_table, load_rank_table, validate_rank_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
IPS_A = [f"192.168.{100 + d % 4}.{101 - d // 4}" for d in range(8)]
IPS_B = [f"192.168.{100 + d % 4}.{103 - d // 4}" for d in range(8)]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pangu_codeclm.cli", "rank-table", *args], capture_output=True,
                          text=True, timeout=120)


def _all_strings(obj):
    if isinstance(obj, dict):
        return all(_all_strings(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_all_strings(v) for v in obj)
    return isinstance(obj, str)


def test_cli_writes_a_two_server_table():
    proc = cli("--server-ip", "10.0.0.11", "--device-ips", ",".join(IPS_A), "--server-ip", "10.0.0.12",
               "--device-ips", ",".join(IPS_B), "-o", "t.json")
    assert proc.returncode == 0, proc.stderr
    table = json.loads(pathlib.Path("t.json").read_text())
    assert table["version"] == "1.0" and table["status"] == "completed" and table["server_count"] == "2"
    assert _all_strings(table)
    second = table["server_list"][1]
    assert second["server_id"] == "10.0.0.12"
    assert [d["rank_id"] for d in second["device"]] == [str(r) for r in range(8, 16)]
    assert [d["device_id"] for d in second["device"]] == [str(d) for d in range(8)]
    assert second["device"][5]["device_ip"] == IPS_B[5]
    assert cli("--check", "t.json").stdout.strip().endswith("16 ranks on 2 server(s) [8, 8]")


def test_cli_reads_hccn_conf():
    pathlib.Path("hccn.conf").write_text("".join(f"address_{d}={ip}\nnetdetect_{d}=10.0.0.1\n"
                                                 for d, ip in enumerate(IPS_A)))
    proc = cli("--server-ip", "10.0.0.11", "--hccn-conf", "hccn.conf", "-o", "t.json")
    assert proc.returncode == 0, proc.stderr
    devices = json.loads(pathlib.Path("t.json").read_text())["server_list"][0]["device"]
    assert [d["device_ip"] for d in devices] == IPS_A


@pytest.mark.parametrize("args, message", [
    (["--server-ip", "10.0.0.300", "--device-ips", "192.168.0.1"], "--server-ip #1: '10.0.0.300' is not an IPv4"),
    (["--server-ip", "10.0.0.1", "--device-ips", "192.168.0.1,bad"], "--device-ips #1 entry 1: 'bad'"),
    (["--server-ip", "10.0.0.1"], "got 1 server IPs and 0 device lists"),
])
def test_cli_rejects_bad_input_and_writes_nothing(args, message):
    proc = cli(*args, "-o", "t.json")
    assert proc.returncode == 2 and message in proc.stderr
    assert not os.path.exists("t.json")


@pytest.mark.parametrize("example", ["hccl_8p_example.json", "hccl_16p_2node_example.json"])
def test_shipped_examples_are_valid(example):
    _, n, per_server = load_rank_table(ROOT / "rank_tables" / example)
    assert (n, per_server) == ((8, [8]) if "8p" in example else (16, [8, 8]))


def _good():
    return build_rank_table([("10.0.0.11", IPS_A), ("10.0.0.12", IPS_B)])


@pytest.mark.parametrize("mutate, field", [
    (lambda t: t.update(version="2.0"), "field 'version' must be \"1.0\""),
    (lambda t: t.update(status="initializing"), "field 'status' must be \"completed\""),
    (lambda t: t.update(server_count=2), "field 'server_count': expected a non-negative integer as a string"),
    (lambda t: t.update(server_count="3"), "'server_count' is 3 but 'server_list' has 2"),
    (lambda t: t["server_list"][1]["device"][3].update(rank_id="12"), "'server_list[1].device[3].rank_id' is 12"),
    (lambda t: t["server_list"][0]["device"][2].update(device_ip="192.168.1"),
     "'server_list[0].device[2].device_ip': '192.168.1' is not an IPv4"),
    (lambda t: t["server_list"][0]["device"][1].update(device_id="0"), "'server_list[0].device[1].device_id' 0 is repeated"),
    (lambda t: t["server_list"][1]["device"][0].pop("rank_id"), "'server_list[1].device[0].rank_id' is missing"),
    (lambda t: t.pop("server_list"), "missing field 'server_list'"),
    (lambda t: t["server_list"][1].update(server_id="10.0.0.11"), "'server_list[1].server_id' repeats"),
])
def test_malformed_tables_name_the_field(mutate, field):
    table = copy.deepcopy(_good())
    mutate(table)
    with pytest.raises(RankTableError) as err:
        validate_rank_table(table, source="t.json")
    assert field in str(err.value) and str(err.value).startswith("t.json")


def test_invalid_json_names_the_line():
    pathlib.Path("t.json").write_text('{\n "version": "1.0",\n oops\n}')
    with pytest.raises(RankTableError, match=r"t.json:3: invalid JSON"):
        load_rank_table("t.json")


def _launch(*args, env=None):
    return subprocess.run(["bash", str(ROOT / "scripts" / "run_distribute_train.sh"), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def test_distribute_script_checks_before_starting():
    config = str(ROOT / "configs" / "pangu_codeclm_300m_none_16p.yaml")
    pathlib.Path("t.json").write_text(json.dumps(_good()))
    proc = _launch("t.json", config, "8", "8", env={"DRY_RUN": "1", "OUTPUT": "out"})
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("DEVICE_ID=")]
    assert len(lines) == 8
    assert lines[3].startswith("DEVICE_ID=3 RANK_ID=11 RANK_SIZE=16 cd ") and "/out/device_3 " in lines[3]
    assert lines[3].endswith("/out/device_3/train.log") and "--device_target Ascend" in lines[3]

    bad = _good()
    bad["server_list"][0]["device"][0]["device_ip"] = "nope"
    pathlib.Path("bad.json").write_text(json.dumps(bad))
    for args, message in [(("bad.json", config), "'server_list[0].device[0].device_ip': 'nope'"),
                          (("t.json", config, "8", "9"), "ranks 9..16 exceed the table's 16 ranks"),
                          (("t.json", config, "0"), "DEVICE_NUM must be in 1..16"),
                          (("missing.json", config), "RANK_TABLE_FILE 'missing.json' is not a file"),
                          (("t.json", "nope.yaml"), "CONFIG 'nope.yaml' is not a file")]:
        proc = _launch(*args)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "starting ranks" not in proc.stdout
    assert not os.path.exists("runs") and not os.path.exists("out")
