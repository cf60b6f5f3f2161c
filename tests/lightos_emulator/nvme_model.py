#!/usr/bin/env python3
"""A stand-in for nvme-cli 2.3 (`nvme`), over the kernel model of nvme_kernel.py.

    nvme_model.py --sysfs-root DIR --dev-root DIR [--hostnqn-file FILE] <nvme arguments>

Tests install a two-line wrapper as the service's `nvme` program (the service runs it with a
bare environment, as it would run nvme-cli). What it implements, as nvme-cli does:

  connect -t tcp -a ADDR -s PORT -n NQN [-q HOSTNQN] [-I ID] [-l S] [-c S] [-i N] [-o FMT]
      (long forms --transport= ... too). The target is the cluster emulator's fabric listener
      at ADDR:PORT; the kernel's part (a controller, its subsystem, the namespaces the volumes'
      ACLs grant this host) is laid out by the emulator. A controller that exists for the same
      subsystem, transport and address: "already connected" on stderr, status 1. A refused or
      failed connection: "could not add new controller: ..." on stderr, status 1. Success
      prints nothing (`-o normal`: "device: nvmeX"; `-o json`: {"device":"nvmeX"}).
  disconnect -n NQN | -d DEV
      "NQN:<nqn> disconnected <n> controller(s)", status 0 (also for none).
  list-subsys [-o json]
  gen-hostnqn, version
Anything else: status 1 with nvme-cli's usage complaint.
"""

import json
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nvme_kernel import Kernel  # noqa: E402


def parse(argv, spec):
    """nvme-cli's option forms: -x V, -xV, --long=V, --long V, flags. spec: {long: short}."""
    opts, rest, i = {}, [], 0
    shorts = {v: k for k, v in spec.items() if v}
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            k, eq, v = a[2:].partition("=")
            if k not in spec:
                raise SystemExit(f"unrecognized option '--{k}'")
            if not eq:
                i += 1
                if i >= len(argv):
                    raise SystemExit(f"option '--{k}' requires an argument")
                v = argv[i]
            opts[k] = v
        elif a.startswith("-") and len(a) > 1:
            k = shorts.get(a[1])
            if k is None:
                raise SystemExit(f"invalid option -- '{a[1]}'")
            v = a[2:]
            if not v:
                i += 1
                if i >= len(argv):
                    raise SystemExit(f"option requires an argument -- '{a[1]}'")
                v = argv[i]
            opts[k] = v
        else:
            rest.append(a)
        i += 1
    return opts, rest


def post(addr, port, path, body):
    req = urllib.request.Request(f"http://{addr}:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def connect(k, argv, default_hostnqn):
    spec = {"transport": "t", "traddr": "a", "trsvcid": "s", "nqn": "n", "hostnqn": "q",
            "hostid": "I", "ctrl-loss-tmo": "l", "reconnect-delay": "c", "nr-io-queues": "i",
            "output-format": "o", "keep-alive-tmo": "k", "host-traddr": "w", "host-iface": "f"}
    o, _ = parse(argv, spec)
    if "nqn" not in o:
        print("need a transport (-t) argument", file=sys.stderr) if "transport" not in o else \
            print("need a -n argument", file=sys.stderr)
        return 1
    if o.get("transport") != "tcp":
        print("Failed to write to /dev/nvme-fabrics: Invalid argument", file=sys.stderr)
        print("could not add new controller: invalid arguments/configuration", file=sys.stderr)
        return 1
    addr, port = o.get("traddr", ""), o.get("trsvcid", "4420")
    hostnqn = o.get("hostnqn") or default_hostnqn
    if not hostnqn:
        print("hostnqn is not set", file=sys.stderr)
        return 1
    with k.locked():
        for c, a in k.controllers().items():
            if a["subsysnqn"] == o["nqn"] and a["transport"] == "tcp" and \
                    a["address"].startswith(f"traddr={addr},trsvcid={port}"):
                print("already connected", file=sys.stderr)
                return 1
    try:
        r = post(addr, port, "/fabric/connect",
                 {"subsysnqn": o["nqn"], "hostnqn": hostnqn, "traddr": addr, "trsvcid": port,
                  "sysfsRoot": k.sysfs, "devRoot": k.dev})
    except urllib.error.HTTPError:
        print("could not add new controller: failed to write to nvme-fabrics device",
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError):
        print("Failed to write to /dev/nvme-fabrics: Connection refused", file=sys.stderr)
        print("could not add new controller: connection refused", file=sys.stderr)
        return 1
    fmt = o.get("output-format", "")
    if fmt == "json":
        print('{\n  "device":"%s"\n}' % r["device"])
    elif fmt == "normal":
        print(f"device: {r['device']}")
    return 0


def disconnect(k, argv):
    o, _ = parse(argv, {"nqn": "n", "device": "d", "verbose": "v"})
    gone = 0
    ctrls = k.controllers()
    if "nqn" in o:
        names = [c for c, a in ctrls.items() if a["subsysnqn"] in o["nqn"].split(",")]
    elif "device" in o:
        names = [c for c in o["device"].split(",") if c in ctrls]
        if not names:
            print(f"Did not find device {o['device']}", file=sys.stderr)
            return 1
    else:
        print("need a -n or -d argument", file=sys.stderr)
        return 1
    for c in names:
        addr = dict(x.split("=", 1) for x in ctrls[c]["address"].split(",") if "=" in x)
        try:  # the target learns the host went (it lays the tree out, so not under our lock)
            post(addr.get("traddr", ""), addr.get("trsvcid", ""), "/fabric/disconnect",
                 {"controller": c, "sysfsRoot": k.sysfs})
        except (urllib.error.URLError, OSError, ValueError):
            pass
        with k.locked():  # the kernel deletes the controller whatever the target says
            k.remove_controller(c)
        gone += 1
    if "nqn" in o:
        print(f"NQN:{o['nqn'].split(',')[0]} disconnected {gone} controller(s)")
    return 0


def list_subsys(k, argv, default_hostnqn):
    o, _ = parse(argv, {"output-format": "o", "verbose": "v"})
    ctrls = k.controllers()
    hosts = {}
    for s, nqn in k.subsystems().items():
        sd = k.subsys_dir(s)
        paths = [{"Name": c, "Transport": a["transport"], "Address": a["address"],
                  "State": a["state"]}
                 for c, a in ctrls.items() if os.path.islink(os.path.join(sd, c))]
        host = next((ctrls[p["Name"]]["hostnqn"] for p in paths), default_hostnqn)
        hosts.setdefault(host, []).append({"Name": s, "NQN": nqn, "Paths": paths})
    if o.get("output-format") == "json":
        print(json.dumps([{"HostNQN": h, "Subsystems": subs} for h, subs in hosts.items()],
                         indent=2))
    else:
        for subs in hosts.values():
            for sub in subs:
                print(f"{sub['Name']} - NQN={sub['NQN']}\n\\")
                for p in sub["Paths"]:
                    print(f" +- {p['Name']} {p['Transport']} {p['Address']} {p['State']}")
    return 0


def main():
    args = sys.argv[1:]
    roots = {}
    while args and args[0] in ("--sysfs-root", "--dev-root", "--hostnqn-file"):
        roots[args[0]] = args[1]
        args = args[2:]
    k = Kernel(roots.get("--sysfs-root", "/sys"), roots.get("--dev-root", "/dev"))
    hostnqn = ""
    try:
        with open(roots.get("--hostnqn-file", "/etc/nvme/hostnqn")) as f:
            hostnqn = f.readline().strip()
    except OSError:
        pass
    if not args:
        print("usage: nvme <command> [<device>] [<args>]", file=sys.stderr)
        return 1
    cmd, rest = args[0], args[1:]
    try:
        if cmd == "connect":
            return connect(k, rest, hostnqn)
        if cmd == "disconnect":
            return disconnect(k, rest)
        if cmd == "list-subsys":
            return list_subsys(k, rest, hostnqn)
        if cmd == "gen-hostnqn":
            import uuid
            print(f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}")
            return 0
        if cmd == "version":
            print("nvme version 2.3 (git 2.3)\nlibnvme version 1.3 (git 1.3)")
            return 0
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 1
    print(f"ERROR: Invalid sub-command '{cmd}'", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
