#!/usr/bin/python3
"""Generate the validation cases for SMS "register a source server" (POST /v3/sources).

Reads register_source_seed.txt (a verbatim copy of Huawei Cloud's public API
page) and writes register_cases.json next to it:

  {"source": ..., "example": <the seed's example request, masks filled>,
   "cases": [{"name", "ops", "expect": "accept"|"reject", "field"}, ...]}

The request tables (header, PostSourceServerBody, then the nested object
tables) are parsed from the seed; each nested table is identified by a
depth-first walk of the "Array of X objects" references, asserted to match the
order of the tables.  Bounds (Minimum/Maximum, Array Length) come from the
descriptions.  The seed's "Enumeration values:" lists are empty (lost when the
page was scraped), so the enumerations come from the models of Huawei's Go SDK
(huaweicloud-sdk-go-v3, services/sms/v3/model) in ENUMS below.

Ops (applied in order to a deep copy of "example"):
  {"op": "set", "path": [...], "value": v}
  {"op": "remove", "path": [...]}
  {"op": "fill", "path": [...], "count": n, "element": obj}  (array made exactly
      n long: existing elements kept up to n, copies of element appended)

Regenerate:  /usr/bin/python3 tests/data/sms/gen_register_cases.py
Check:       /usr/bin/python3 tests/data/sms/gen_register_cases.py --check
             (exit 1 with a diff summary if register_cases.json is stale)
Standard library only.
"""
import copy
import difflib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = "register_source_seed.txt"
OUT = "register_cases.json"

# Enumerations from the Go SDK models (the seed's lists are empty).
ENUMS = {
    "os_type": ["WINDOWS", "LINUX"],
    "firmware": ["BIOS", "UEFI"],
    "migration_cycle": ["cutovering", "cutovered", "checking", "setting",
                        "replicating", "syncing"],
    "state": ["unavailable", "waiting", "initialize", "replicate", "syncing",
              "stopping", "stopped", "skipping", "deleting", "clearing",
              "cleared", "clearfailed", "premigready", "premiged",
              "premigfailed", "cloning", "cutovering", "finished", "error"],
    "platform": ["hw", "ali", "aws", "azure", "gcp", "tencent", "vmware",
                 "hyperv", "other", "default"],
}
NESTED = ["ServerDisk", "PhysicalVolume", "BtrfsFileSystem", "BtrfsSubvolumn",
          "NetWork", "VolumeGroups", "LogicalVolumes"]
# Where each nested type is exercised: its first instance in the example.
INSTANCE = {
    "ServerDisk": ["disks", 0],
    "PhysicalVolume": ["disks", 0, "physical_volumes", 0],
    "BtrfsFileSystem": ["btrfs_list", 0],
    "BtrfsSubvolumn": ["btrfs_list", 0, "subvolumn", 0],
    "NetWork": ["networks", 0],
    "VolumeGroups": ["volume_groups", 0],
    "LogicalVolumes": ["volume_groups", 0, "logical_volumes", 0],
}
MINIMAL = {"NetWork": {"mac": ""}}  # minimal valid element; {} for the others


def parse_tables(lines):
    """Pipe tables: a row is a line "|" followed by one "cell |" line per column."""
    tables, i = [], 0
    while i < len(lines):
        if lines[i] == "|" and i + 1 < len(lines) and lines[i + 1] == "Parameter |":
            j, header = i + 1, []
            while not lines[j].startswith("|---"):
                header.append(lines[j][:-1].strip())
                j += 1
            ncols = lines[j].count("---")
            assert ncols == len(header), (header, lines[j])
            j, rows = j + 1, []
            # Rows until a line other than "|", or the next table's header row.
            while j + 1 < len(lines) and lines[j] == "|" and lines[j + 1] != "Parameter |":
                cells = [c[:-1].strip() for c in lines[j + 1:j + 1 + ncols]]
                assert all(c.endswith("|") for c in lines[j + 1:j + 1 + ncols]), cells
                rows.append(dict(zip(header, cells)))
                j += 1 + ncols
            tables.append((i, rows))
            i = j
        else:
            i += 1
    return tables


def field_spec(row):
    d, t = row["Description"], row["Type"]
    num = r"(-?\d+(?:\.\d+)?)"
    mn = re.search(r"Minimum: " + num, d)
    mx = re.search(r"Maximum: " + num, d)
    al = re.search(r"Array Length: (\d+) - (\d+)", d)
    conv = float if t == "Double" else int
    return {
        "name": row["Parameter"], "type": t,
        "mandatory": row["Mandatory"] == "Yes",
        "min": conv(mn.group(1)) if mn else None,
        "max": conv(mx.group(1)) if mx else None,
        "alen": (int(al.group(1)), int(al.group(2))) if al else None,
        "enum_label": "Enumeration values:" in d,
        "of": (re.fullmatch(r"Array of (\w+) objects", t) or [None, None])[1],
    }


def load_seed(text):
    lines = text.split("\n")
    resp = lines.index("Response Parameters")
    tables = [rows for (pos, rows) in parse_tables(lines) if pos < resp]
    assert len(tables) == 2 + len(NESTED), len(tables)
    assert [r["Parameter"] for r in tables[0]] == ["X-Auth-Token"], tables[0]
    specs = [[field_spec(r) for r in rows] for rows in tables[1:]]
    # Depth-first walk of "Array of X objects" from the body; must match table order.
    walk = []

    def dfs(idx):
        for f in specs[idx]:
            if f["of"]:
                walk.append(f["of"])
                dfs(len(walk))
    dfs(0)
    assert walk == NESTED, walk
    types = {"PostSourceServerBody": specs[0]}
    types.update(zip(NESTED, specs[1:]))
    # The example request body, masks ("xxx...") replaced by as many "1".
    start = lines.index("POST https://{endpoint}/v3/sources") + 1
    end = lines.index("Example Responses")
    example = unmask(json.loads("\n".join(lines[start:end])))
    return types, example


def unmask(v):
    if isinstance(v, str):
        return re.sub(r"x{3,}", lambda m: "1" * len(m.group(0)), v)
    if isinstance(v, list):
        return [unmask(x) for x in v]
    if isinstance(v, dict):
        return {k: unmask(x) for k, x in v.items()}
    return v


def dotted(path):
    s = ""
    for p in path:
        s += "[%d]" % p if isinstance(p, int) else ("." if s else "") + p
    return s


def resolve(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def apply_ops(example, ops):
    """Apply ops as a consumer would; asserts every path resolves."""
    doc = copy.deepcopy(example)
    for op in ops:
        parent, last = resolve(doc, op["path"][:-1]), op["path"][-1]
        if op["op"] == "set":
            assert isinstance(parent, dict) or last < len(parent), op["path"]
            parent[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            assert last in parent, op["path"]
            del parent[last]
        else:
            arr = parent[last]
            assert isinstance(arr, list), op["path"]
            del arr[op["count"]:]
            arr += [copy.deepcopy(op["element"]) for _ in range(op["count"] - len(arr))]
    return doc


def build(text):
    types, example = load_seed(text)
    # Sanity: body enumerations flagged in the seed == the SDK table; example keys known.
    flagged = sorted(f["name"] for f in types["PostSourceServerBody"] if f["enum_label"])
    assert flagged == sorted(ENUMS), flagged
    assert not any(f["enum_label"] for t in NESTED for f in types[t])
    known = {t: {f["name"] for f in types[t]} for t in types}
    assert set(example) <= known["PostSourceServerBody"], set(example) - known["PostSourceServerBody"]
    for t, base in INSTANCE.items():
        arr = resolve(example, base[:-1])
        for el in arr:
            assert set(el) <= known[t], (t, set(el) - known[t])

    cases, names = [], set()

    def case(name, ops, expect, field=""):
        assert name not in names, name
        names.add(name)
        apply_ops(example, ops)
        cases.append({"name": name, "ops": ops, "expect": expect,
                      "field": field if expect == "reject" else ""})

    def sset(path, value, name, expect, field=None):
        case(name, [{"op": "set", "path": path, "value": value}], expect,
             dotted(path) if field is None else field)

    def fill(path, count, element, name, expect):
        case(name, [{"op": "fill", "path": path, "count": count,
                     "element": element}], expect, dotted(path))

    case("example", [], "accept")
    for tname in ["PostSourceServerBody"] + NESTED:
        base = INSTANCE.get(tname, [])
        for f in types[tname]:
            path = base + [f["name"]]
            fp, t = dotted(path), f["type"]
            if f["of"]:  # array of objects
                lo, hi = f["alen"]
                el = MINIMAL.get(f["of"], {})
                sset(path, "x", fp + ' = "x" (not an array)', "reject")
                sset(path, ["x"], fp + ' = ["x"] (element not an object)', "reject",
                     dotted(path + [0]))
                fill(path, hi, el, "%s count %d (max)" % (fp, hi), "accept")
                fill(path, hi + 1, el, "%s count %d (max+1)" % (fp, hi + 1), "reject")
                if lo > 0:
                    fill(path, lo, el, "%s count %d (min)" % (fp, lo), "accept")
                    fill(path, lo - 1, el, "%s count %d (min-1)" % (fp, lo - 1), "reject")
            else:
                sset(path, {}, fp + " = {} (not a scalar)", "reject")
            if t == "String" and f["name"] in ENUMS and tname == "PostSourceServerBody":
                for v in ENUMS[f["name"]]:
                    sset(path, v, '%s = "%s"' % (fp, v), "accept")
                sset(path, "BOGUS", fp + ' = "BOGUS"', "reject")
            elif t == "String" and tname == "PostSourceServerBody" and f["name"] in ("ip", "ipv6"):
                fmt = {"ip": [("10.0.0.1", "accept"), ("300.1.2.3", "reject"),
                              ("10.0.0", "reject"), ("fe80::1", "reject")],
                       "ipv6": [("fe80::1", "accept"), ("2001:db8::8a2e:370:7334", "accept"),
                                ("10.0.0.1", "reject"), ("fe80:::1", "reject")]}[f["name"]]
                for v, exp in fmt:
                    sset(path, v, '%s = "%s"' % (fp, v), exp)
            elif t == "String":
                lo, hi = f["min"], f["max"]
                sset(path, "a" * hi, "%s = len %d (max)" % (fp, hi), "accept")
                sset(path, "a" * (hi + 1), "%s = len %d (max+1)" % (fp, hi + 1), "reject")
                if lo > 0:
                    sset(path, "a" * lo, "%s = len %d (min)" % (fp, lo), "accept")
                    sset(path, "a" * (lo - 1), "%s = len %d (min-1)" % (fp, lo - 1), "reject")
            elif t in ("Integer", "Long"):
                lo, hi = f["min"], f["max"]
                for v, tag, exp in [(lo, "min", "accept"), (lo - 1, "min-1", "reject"),
                                    (hi, "max", "accept"), (hi + 1, "max+1", "reject")]:
                    sset(path, v, "%s = %s (%d)" % (fp, tag, v), exp)
                sset(path, str(lo), '%s = "%d" (min as string)' % (fp, lo), "accept")
                sset(path, "12abc", fp + ' = "12abc"', "reject")
            elif t == "Double":
                lo, hi = f["min"], f["max"]
                assert (lo, hi) == (0.0, 10000.0), (fp, lo, hi)
                for v, tag, exp in [(lo, "min", "accept"), (lo - 1, "min-1", "reject"),
                                    (hi, "max", "accept"), (hi + 0.5, "max+0.5", "reject")]:
                    sset(path, v, "%s = %s (%r)" % (fp, tag, v), exp)
            elif t == "Boolean":
                sset(path, True, fp + " = true", "accept")
                sset(path, False, fp + " = false", "accept")
            else:
                assert f["of"], (fp, t)
            if f["mandatory"]:
                case(fp + " removed (mandatory)", [{"op": "remove", "path": path}],
                     "reject", fp)

    # NetWork mac: only the first network's mac must be non-empty.
    sset(["networks", 0, "mac"], "", 'networks[0].mac = "" (first must not be empty)', "reject")
    case('networks[1] = {"mac": ""} (second may be empty)',
         [{"op": "fill", "path": ["networks"], "count": 2, "element": {"mac": ""}}], "accept")
    case("networks[1] = {} (mac missing)",
         [{"op": "fill", "path": ["networks"], "count": 2, "element": {}}],
         "reject", "networks[1].mac")
    # Either ip or ipv6 must be given (the example has ip only, no ipv6 key to remove).
    assert "ip" in example and "ipv6" not in example
    case("ip and ipv6 both absent", [{"op": "remove", "path": ["ip"]}], "reject", "ip")
    case('ip removed, ipv6 = "fe80::1"',
         [{"op": "remove", "path": ["ip"]},
          {"op": "set", "path": ["ipv6"], "value": "fe80::1"}], "accept")
    # Btrfs size carries a human-readable size in the example.
    bs = ["btrfs_list", 0, "size"]
    assert resolve(example, bs) == "3.30GiB"
    sset(bs, "3.30GiB", 'btrfs_list[0].size = "3.30GiB" (example value)', "accept")
    sset(bs, "12.5MiB", 'btrfs_list[0].size = "12.5MiB"', "accept")
    sset(bs, "3.30XB", 'btrfs_list[0].size = "3.30XB" (unknown unit)', "reject")
    return {"source": SEED, "example": example, "cases": cases}


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        sys.exit("usage: gen_register_cases.py [--check]")
    with open(os.path.join(HERE, SEED), encoding="utf-8") as fh:
        doc = build(fh.read())
    out = json.dumps(doc, indent=1, sort_keys=False) + "\n"
    path = os.path.join(HERE, OUT)
    n = len(doc["cases"])
    if not check:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(out)
        print("wrote %s: %d cases" % (OUT, n))
        return 0
    try:
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
    except FileNotFoundError:
        print("%s is missing; run without --check" % OUT)
        return 1
    if old == out:
        print("%s is up to date: %d cases" % (OUT, n))
        return 0
    diff = list(difflib.unified_diff(old.splitlines(), out.splitlines(),
                                     "committed/" + OUT, "regenerated/" + OUT, lineterm=""))
    added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    print("%s differs from the regenerated output: +%d -%d lines" % (OUT, added, removed))
    print("\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else ""))
    print("regenerated: %d cases; run without --check to update" % n)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
