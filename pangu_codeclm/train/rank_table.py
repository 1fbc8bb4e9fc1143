"""HCCL rank tables (format version 1.0) for Ascend 910: write one from device IPs, and validate one.

`pangu-codeclm rank-table --server-ip 10.0.0.1 --device-ips 192.168.100.101,...` writes a table; several servers:
repeat both flags in the same order. `--check FILE` validates an existing table. All values are strings, as HCCL wants.
"""
import ipaddress
import os
import re

from ..io_utils import load_json

VERSION = "1.0"
MAX_DEVICES_PER_SERVER = 16


class RankTableError(ValueError):
    """A malformed rank table; the message names the file and the field."""


def _ipv4(value, where):
    if not isinstance(value, str):
        raise RankTableError(f"{where}: expected an IPv4 address as a string, got {value!r}")
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise RankTableError(f"{where}: {value!r} is not an IPv4 address") from None
    return value


def _digits(value, where):
    if not isinstance(value, str) or not re.fullmatch(r"\d+", value):
        raise RankTableError(f"{where}: expected a non-negative integer as a string, got {value!r}")
    return int(value)


def build_rank_table(servers):
    """servers: [(server_ip, [device_ip, ...]), ...] in rank order → rank table dict (ranks numbered across servers)."""
    if not servers:
        raise RankTableError("rank table: expected at least one server")
    table = {"version": VERSION, "server_count": str(len(servers)), "server_list": [], "status": "completed"}
    rank = 0
    for s, (server_ip, device_ips) in enumerate(servers):
        _ipv4(server_ip, f"--server-ip #{s + 1}")
        if not 1 <= len(device_ips) <= MAX_DEVICES_PER_SERVER:
            raise RankTableError(f"--device-ips #{s + 1}: expected 1..{MAX_DEVICES_PER_SERVER} device IPs, "
                                 f"got {len(device_ips)}")
        devices = []
        for d, ip in enumerate(device_ips):
            _ipv4(ip, f"--device-ips #{s + 1} entry {d}")
            devices.append({"device_id": str(d), "device_ip": ip, "rank_id": str(rank)})
            rank += 1
        table["server_list"].append({"server_id": server_ip, "device": devices, "host_nic_ip": "reserve"})
    validate_rank_table(table)
    return table


def validate_rank_table(table, source="rank table"):
    """Check structure and values; return (number of ranks, devices per server). Raises RankTableError naming the field."""
    if not isinstance(table, dict):
        raise RankTableError(f"{source}: expected a JSON object at the top level")
    for key in ("version", "server_count", "server_list", "status"):
        if key not in table:
            raise RankTableError(f"{source}: missing field '{key}'")
    if table["version"] != VERSION:
        raise RankTableError(f"{source}: field 'version' must be \"{VERSION}\", got {table['version']!r}")
    if table["status"] != "completed":
        raise RankTableError(f"{source}: field 'status' must be \"completed\", got {table['status']!r}")
    servers = table["server_list"]
    if not isinstance(servers, list) or not servers:
        raise RankTableError(f"{source}: field 'server_list' must be a non-empty list")
    count = _digits(table["server_count"], f"{source}: field 'server_count'")
    if count != len(servers):
        raise RankTableError(f"{source}: field 'server_count' is {count} but 'server_list' has {len(servers)} servers")
    ranks, per_server, seen_servers = [], [], set()
    for s, server in enumerate(servers):
        where = f"{source}: field 'server_list[{s}]"
        if not isinstance(server, dict):
            raise RankTableError(f"{where}' must be an object")
        for key in ("server_id", "device"):
            if key not in server:
                raise RankTableError(f"{where}.{key}' is missing")
        _ipv4(server["server_id"], f"{where}.server_id'")
        if server["server_id"] in seen_servers:
            raise RankTableError(f"{where}.server_id' repeats server {server['server_id']}")
        seen_servers.add(server["server_id"])
        devices = server["device"]
        if not isinstance(devices, list) or not 1 <= len(devices) <= MAX_DEVICES_PER_SERVER:
            raise RankTableError(f"{where}.device' must be a list of 1..{MAX_DEVICES_PER_SERVER} devices")
        ids = set()
        for d, dev in enumerate(devices):
            dwhere = f"{where}.device[{d}]"
            if not isinstance(dev, dict):
                raise RankTableError(f"{dwhere}' must be an object")
            for key in ("device_id", "device_ip", "rank_id"):
                if key not in dev:
                    raise RankTableError(f"{dwhere}.{key}' is missing")
            device_id = _digits(dev["device_id"], f"{dwhere}.device_id'")
            if device_id >= MAX_DEVICES_PER_SERVER or device_id in ids:
                raise RankTableError(f"{dwhere}.device_id' {device_id} is repeated or out of range")
            ids.add(device_id)
            _ipv4(dev["device_ip"], f"{dwhere}.device_ip'")
            ranks.append((_digits(dev["rank_id"], f"{dwhere}.rank_id'"), f"{dwhere}.rank_id'"))
        per_server.append(len(devices))
    for expected, (rank, where) in enumerate(ranks):
        if rank != expected:
            raise RankTableError(f"{where} is {rank}; rank ids must run 0..{len(ranks) - 1} in server/device order")
    return len(ranks), per_server


def load_rank_table(path):
    """Read and validate a rank table file; returns (table, number of ranks, devices per server)."""
    path = os.fspath(path)
    table = load_json(path, RankTableError, what="rank table file")
    n, per_server = validate_rank_table(table, source=path)
    return table, n, per_server


def read_hccn_conf(path="/etc/hccn.conf"):
    """Device IPs from an Ascend `hccn.conf` (lines `address_<device>=<ip>`), in device order."""
    found = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = re.match(r"\s*address_(\d+)\s*=\s*(\S+)", line)
            if m:
                found[int(m.group(1))] = _ipv4(m.group(2), f"{path}:{lineno}")
    if not found:
        raise RankTableError(f"{path}: no 'address_<n>=<ip>' lines")
    if sorted(found) != list(range(len(found))):
        raise RankTableError(f"{path}: device ids {sorted(found)} are not 0..{len(found) - 1}")
    return [found[i] for i in range(len(found))]
