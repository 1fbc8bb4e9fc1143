"""`pangu-codeclm rank-table`: write an HCCL rank table for Ascend 910 from device IPs, or validate one (`--check`)."""
import sys


def add_arguments(parser):
    parser.add_argument("--server-ip", action="append", default=[], metavar="IP",
                        help="host IP of a server (repeat per server, in rank order)")
    parser.add_argument("--device-ips", action="append", default=[], metavar="IP,IP,...",
                        help="comma-separated device (NIC) IPs of that server, device 0 first (repeat per server)")
    parser.add_argument("--hccn-conf", default=None, help="read this server's device IPs from hccn.conf instead")
    parser.add_argument("--output", "-o", default="hccl_rank_table.json", help="file to write")
    parser.add_argument("--check", metavar="FILE", default=None, help="validate FILE and print its size; write nothing")


def run(args):
    from ..io_utils import atomic_write_json
    from ..train.rank_table import (RankTableError, build_rank_table, load_rank_table,
                                    read_hccn_conf)

    try:
        if args.check:
            _, n, per_server = load_rank_table(args.check)
            print(f"{args.check}: valid rank table, {n} ranks on {len(per_server)} server(s) {per_server}")
            return 0
        device_lists = [[ip.strip() for ip in item.split(",") if ip.strip()] for item in args.device_ips]
        if args.hccn_conf:
            device_lists.append(read_hccn_conf(args.hccn_conf))
        if not args.server_ip or len(args.server_ip) != len(device_lists):
            raise RankTableError(f"give one --server-ip per server and one --device-ips (or --hccn-conf) for each: "
                                 f"got {len(args.server_ip)} server IPs and {len(device_lists)} device lists")
        table = build_rank_table(list(zip(args.server_ip, device_lists)))
    except RankTableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_write_json(args.output, table, indent=4)
    print(f"wrote {args.output}: {sum(len(s['device']) for s in table['server_list'])} ranks on "
          f"{table['server_count']} server(s)")
    return 0
