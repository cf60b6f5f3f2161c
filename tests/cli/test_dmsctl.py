#!/usr/bin/env python3
"""dmsctl end to end: the real binary against a real `dmsctl serve` on 127.0.0.1.

Run: DMSCTL=build/release/dmsctl python3 tests/cli/test_dmsctl.py
Golden files (tests/cli/golden/) are rewritten with UPDATE_GOLDEN=1; ids, times and paths are
replaced by placeholders before comparing.
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

DMSCTL = os.path.abspath(os.environ.get("DMSCTL", "build/release/dmsctl"))
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
PASSWORD = "cli-test-admin-password"
MIB = 1 << 20
# A minimal registration an SMS agent sends (POST /v3/sources) that passes every check.
SOURCE = {"name": "web01", "os_type": "LINUX", "os_version": "UBUNTU22.04", "agent_version": "1.0",
          "ip": "10.0.0.5", "networks": [{"mac": "aa:bb:cc:dd:ee:01", "mtu": 1500}],
          "disks": [{"name": "/dev/vda", "size": 10737418240, "partition_style": "GPT"}],
          "firmware": "UEFI", "boot_loader": "GRUB", "btrfs_list": [], "volume_groups": [],
          "has_rsync": True, "has_tc": True, "paravirtualization": False, "raw_devices": ""}


class Server:
    """`dmsctl serve` on an ephemeral port, in its own data directory."""

    def __init__(self, root, *extra):
        self.root = root
        self.log = open(os.path.join(root, "serve.log"), "w+")
        env = dict(os.environ, DMS_ADMIN_PASSWORD=PASSWORD)
        self.proc = subprocess.Popen(
            [DMSCTL, "serve", "--listen", "127.0.0.1:0", "--data-dir",
             os.path.join(root, "data"), *extra],
            stderr=self.log, stdout=subprocess.DEVNULL, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            self.log.seek(0)
            m = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", self.log.read())
            if m:
                self.endpoint = "http://127.0.0.1:" + m.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.log.seek(0)
        raise RuntimeError("serve did not start: " + self.log.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


class Cli:
    """Runs dmsctl with a private HOME (its config file) and no DMS_* variables."""

    def __init__(self, home):
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DMS")}
        self.env.update(HOME=home, XDG_CONFIG_HOME="")
        self.env.pop("XDG_CONFIG_HOME")

    def run(self, *args, input=None, env=None, check=None, timeout=120):
        e = dict(self.env, **(env or {}))
        p = subprocess.run([DMSCTL, *args], input=input, capture_output=True, text=True, env=e,
                           timeout=timeout)
        if check is not None and p.returncode != check:
            raise AssertionError(f"dmsctl {' '.join(args)} -> {p.returncode}, wanted {check}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def json(self, *args):
        return json.loads(self.run(*args, "-o", "json", check=0).stdout)


def login_and_attach(cli, server, root, *names):
    """Logs `cli` in as the admin and attaches a local cluster per name under `root`: their ids."""
    cli.run("login", "--endpoint", server.endpoint, "--password-stdin", input=PASSWORD + "\n",
            check=0)
    for name in names:
        cli.run("attach", "cluster", "file://" + os.path.join(root, name), "--name", name,
                "--wait", "--no-progress", check=0)
    return {x["name"]: x["id"] for x in cli.json("list", "clusters")["clusters"]}


def normalise(text, root):
    ids = {}

    def uuid(m):
        return ids.setdefault(m.group(0), f"<id-{len(ids) + 1}>")

    text = text.replace(root, "<tmp>")
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid, text)
    # YAML quotes an id that starts with a digit and not one that starts with a letter.
    text = re.sub(r'"(<id-\d+>)"', r"\1", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>", text)
    return text


class DmsctlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="dmsctl-test-")
        # 16 MiB/s per copy: clones of the 48 MiB source below last about 3 s, long enough to
        # watch, interrupt, throttle and time out on, short enough for CI.
        cls.server = Server(cls.root, "--max-running-workflows", "2",
                            "--copy-rate-limit", str(16 * MIB))
        cls.cli = Cli(os.path.join(cls.root, "home"))
        c = cls.cli
        clusters = login_and_attach(c, cls.server, cls.root, "c1", "c2")
        cls.c1, cls.c2 = clusters["c1"], clusters["c2"]
        vol = c.json("create", "volume", "--cluster", cls.c1, "--name", "src", "--size",
                     "64MiB")["volume"]
        cls.vol = vol["id"]
        with open(vol["devicePath"], "r+b") as f:  # 48 MiB of data, 16 MiB hole
            for i in range(48):
                f.seek(i * MIB)
                f.write(bytes([i % 251 + 1]) * MIB)
        cls.snap = c.json("create", "snapshot", "--cluster", cls.c1, "--name", "snap1",
                          "--source-volume", cls.vol)["snapshot"]["id"]
        cls.clones = 0

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def clone_args(self, verb="volume"):
        DmsctlTest.clones += 1
        return ["clone", verb, "--cluster", self.c1, "--snapshot", self.snap, "--dst-cluster",
                self.c2, "--name", f"copy{DmsctlTest.clones}"]

    def wait_idle(self):
        for _ in range(600):
            running = self.cli.json("list", "workflows", "--state", "RUNNING")["workflows"]
            pending = self.cli.json("list", "workflows", "--state", "PENDING")["workflows"]
            if not running and not pending:
                return
            time.sleep(0.1)
        self.fail("workflows still running")

    def snapshot_bytes(self):
        s = self.cli.json("get", "snapshot", self.snap, "--cluster", self.c1)["snapshot"]
        path = os.path.join(self.root, "c1", "data", s["id"] + ".snap")
        with open(path, "rb") as f:
            return f.read()

    # -- commands and output ------------------------------------------------------------------

    def test_clone_with_wait_is_byte_identical_and_prints_plain_progress_in_a_pipe(self):
        self.wait_idle()
        p = self.cli.run(*self.clone_args(), "--verify", "--wait", "-o", "json", check=0)
        self.assertNotIn("\r", p.stderr)  # no redrawing when stderr is not a terminal
        self.assertNotIn("\x1b[", p.stderr)
        self.assertRegex(p.stderr, r"Cloning volume copy\d+: RUNNING +\d+%")
        self.assertIn("...done.", p.stderr)
        wf = json.loads(p.stdout)["workflow"]  # stdout holds the data only
        self.assertEqual(wf["state"], "COMPLETED")
        vol = self.cli.json("get", "volume", wf["result"]["volumeId"], "--cluster",
                            self.c2)["volume"]
        with open(vol["devicePath"], "rb") as f:
            self.assertEqual(f.read(), self.snapshot_bytes())

    def test_no_progress_silences_progress(self):
        self.wait_idle()
        p = self.cli.run(*self.clone_args("snapshot"), "--wait", "--no-progress", check=0)
        self.assertNotIn("%", p.stderr)
        self.assertNotIn("...done.", p.stderr)

    def test_progress_is_redrawn_on_a_terminal(self):
        self.wait_idle()
        out, rc = self.run_in_pty(self.clone_args() + ["--wait"])
        self.assertEqual(rc, 0, out)
        self.assertIn("\r\x1b[K", out)
        self.assertRegex(out, r"\d+\.\d (MiB|KiB)/s")  # a rate
        self.assertIn("ETA", out)
        self.assertIn("...done.", out)

    def test_ctrl_c_while_waiting_asks_and_cancels(self):
        self.wait_idle()
        out, rc = self.run_in_pty(self.clone_args() + ["--wait"], interrupt_after=1.0,
                                  answer=b"y\n")
        self.assertIn("Cancel workflow", out)
        self.assertIn("...cancelled", out)
        self.assertEqual(rc, 7, out)

    def test_ctrl_c_while_waiting_may_leave_the_workflow_running(self):
        self.wait_idle()
        out, rc = self.run_in_pty(self.clone_args() + ["--wait"], interrupt_after=1.0,
                                  answer=b"n\n")
        self.assertEqual(rc, 1, out)
        self.assertIn("goes on", out)
        wid = re.search(r"dmsctl get workflow ([0-9a-f-]{36}) --watch", out).group(1)
        p = self.cli.run("get", "workflow", wid, "--watch", "--no-progress", check=0)
        self.assertIn("COMPLETED", p.stdout)

    def run_in_pty(self, args, interrupt_after=None, answer=None):
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(DMSCTL, [DMSCTL, *args], self.cli.env)
        out = b""
        start = time.time()
        sent = answered = False
        while True:
            if interrupt_after is not None and not sent and time.time() - start > interrupt_after:
                os.kill(pid, signal.SIGINT)
                sent = True
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if answer and not answered and b"[y/N]" in out:
                    os.write(fd, answer)
                    answered = True
            if time.time() - start > 120:
                os.kill(pid, signal.SIGKILL)
                break
        _, status = os.waitpid(pid, 0)
        return out.decode(errors="replace"), os.waitstatus_to_exitcode(status)

    def test_every_get_and_list_speaks_every_output_format(self):
        c = self.cli
        cases = [
            (["list", "clusters"], "cluster"),
            (["get", "cluster", self.c1], "cluster"),
            (["list", "volumes", "--cluster", self.c1], "volume"),
            (["get", "volume", self.vol, "--cluster", self.c1], "volume"),
            (["list", "snapshots", "--cluster", self.c1], "snapshot"),
            (["get", "snapshot", self.snap, "--cluster", self.c1], "snapshot"),
            (["list", "workflows"], "workflow"),
            (["get", "service-credentials"], "service-credentials"),
        ]
        wf = c.json("list", "workflows")["workflows"][0]["id"]
        cases.append((["get", "workflow", wf], "workflow"))
        for args, kind in cases:
            with self.subTest(args=args):
                j = c.run(*args, "-o", "json", check=0).stdout
                api = json.loads(j)
                y = c.run(*args, "-o", "yaml", check=0).stdout
                self.assertEqual(yaml_load(y), api, y)  # same keys and values as the API
                t = c.run(*args, check=0).stdout
                self.assertTrue(t.splitlines()[0].split()[0] in ("ID", "PUBKEYID"), t)
                w = c.run(*args, "-o", "wide", check=0).stdout
                self.assertGreater(len(w.splitlines()[0].split()), len(t.splitlines()[0].split()))
                n = c.run(*args, "-o", "name", check=0).stdout
                for line in n.splitlines():
                    self.assertTrue(line.startswith(kind + "/"), n)
        self.assertEqual(c.run("list", "clusters", "-o", "xml").returncode, 2)

    def test_json_and_yaml_match_the_golden_files(self):
        c = self.cli
        for args, name in [
            (["get", "cluster", self.c1], "cluster"),
            (["get", "volume", self.vol, "--cluster", self.c1], "volume"),
            (["get", "snapshot", self.snap, "--cluster", self.c1], "snapshot"),
        ]:
            for fmt in ("json", "yaml"):
                with self.subTest(name=name, fmt=fmt):
                    got = normalise(c.run(*args, "-o", fmt, check=0).stdout, self.root)
                    path = os.path.join(GOLDEN, f"{name}.{fmt}")
                    if os.environ.get("UPDATE_GOLDEN"):
                        os.makedirs(GOLDEN, exist_ok=True)
                        with open(path, "w") as f:
                            f.write(got)
                    with open(path) as f:
                        self.assertEqual(got, f.read())

    def test_volume_and_snapshot_lifecycle(self):
        c = self.cli
        v = c.json("create", "volume", "--cluster", self.c1, "--name", "life", "--size", "1GiB",
                   "--replica-count", "2", "--sector-size", "512", "--compression", "true")
        v = v["volume"]
        self.assertEqual((v["size"], v["replicaCount"], v["sectorSize"], v["compression"]),
                         (str(1 << 30), 2, 512, True))
        s = c.json("create", "snapshot", "--cluster", self.c1, "--name", "life-s",
                   "--source-volume", v["id"], "--description", "d")["snapshot"]
        thin = c.json("create", "volume", "--cluster", self.c1, "--name", "life-thin", "--size",
                      "1GiB", "--source-snapshot", s["id"])["volume"]
        self.assertEqual(thin["sourceSnapshotId"], s["id"])
        page = c.json("list", "volumes", "--cluster", self.c1, "--page-size", "1")
        self.assertEqual(len(page["volumes"]), 1)
        self.assertTrue(page["nextPageToken"])
        p = c.run("list", "volumes", "--cluster", self.c1, "--page-size", "1", check=0)
        self.assertIn("--page-token", p.stderr)
        second = c.json("list", "volumes", "--cluster", self.c1, "--page-size", "1",
                        "--page-token", page["nextPageToken"])
        self.assertNotEqual(second["volumes"][0]["id"], page["volumes"][0]["id"])
        for args in (["delete", "volume", thin["id"]], ["delete", "snapshot", s["id"]],
                     ["delete", "volume", v["id"]]):
            c.run(*args, "--cluster", self.c1, check=0)
        self.assertEqual(c.run("get", "volume", v["id"], "--cluster", self.c1).returncode, 4)

    def test_manage_a_file_then_unmanage_it(self):
        c = self.cli
        imp = os.path.join(self.root, "c2", "import")
        os.makedirs(imp, exist_ok=True)
        data = bytes(range(256)) * 4096  # 1 MiB
        with open(os.path.join(imp, "cli-disk.img"), "wb") as f:
            f.write(data)
        with open(os.path.join(imp, "odd.img"), "wb") as f:
            f.write(b"x" * 100)
        listed = c.json("list", "manageable-volumes", "--cluster", self.c2, "--detail",
                        "--sort", "reference:asc")["manageableVolumes"]
        by_ref = {m["reference"]["source-name"]: m for m in listed}
        self.assertTrue(by_ref["import/cli-disk.img"]["safeToManage"])
        self.assertEqual(by_ref["import/odd.img"]["reasonNotSafe"],
                         "size is not a multiple of 512 bytes")
        table = c.run("list", "manageable-volumes", "--cluster", self.c2).stdout
        self.assertIn("REFERENCE", table.splitlines()[0])
        self.assertRegex(table, r"import/cli-disk.img\s+1GiB\s+true")
        page = c.json("list", "manageable-volumes", "--cluster", self.c2, "--sort",
                      "reference:asc", "--marker", "import/cli-disk.img", "--limit", "1")
        self.assertEqual([m["reference"]["source-name"] for m in page["manageableVolumes"]],
                         ["import/odd.img"])
        bad = c.run("list", "manageable-volumes", "--cluster", self.c2, "--sort", "bogus")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("sort: Invalid sort keys passed: bogus", bad.stderr)
        refused = c.run("manage", "volume", "import/odd.img", "--cluster", self.c2)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("ref:", refused.stderr)

        done = c.run("manage", "volume", "import/cli-disk.img", "--cluster", self.c2, "--name",
                     "cli-adopted", "--wait", "--no-progress", "-o", "json")
        w = json.loads(done.stdout)["workflow"]
        self.assertEqual((w["type"], w["state"]), ("MANAGE_VOLUME", "COMPLETED"))
        vid = w["result"]["volumeId"]
        v = c.json("get", "volume", vid, "--cluster", self.c2)["volume"]
        self.assertEqual((v["name"], v["size"], v["state"]), ("cli-adopted", str(1 << 30),
                                                               "Available"))
        self.assertFalse(os.path.exists(os.path.join(imp, "cli-disk.img")))
        self.assertEqual(v["adoptedFrom"]["source-name"], "import/cli-disk.img")

        # Its snapshot, beside the file it was adopted from.
        snap_data = bytes(reversed(range(256))) * 4096
        with open(os.path.join(imp, "cli-disk.img@nightly"), "wb") as f:
            f.write(snap_data)
        snaps = c.json("list", "manageable-snapshots", "--cluster", self.c2,
                       "--detail")["manageableSnapshots"]
        s = [m for m in snaps if m["reference"]["source-name"] == "import/cli-disk.img@nightly"]
        self.assertEqual(s[0]["sourceReference"]["source-name"], "import/cli-disk.img")
        missing = c.run("manage", "snapshot", "import/cli-disk.img@nightly", "--cluster", self.c2)
        self.assertEqual(missing.returncode, 2)  # --volume is required
        self.assertIn("--volume", missing.stderr)
        done = c.run("manage", "snapshot", "import/cli-disk.img@nightly", "--cluster", self.c2,
                     "--volume", vid, "--description", "nightly image", "--metadata", "k=v",
                     "--wait", "--no-progress", "-o", "json")
        w = json.loads(done.stdout)["workflow"]
        self.assertEqual((w["type"], w["state"]), ("MANAGE_SNAPSHOT", "COMPLETED"))
        sid = w["result"]["snapshotId"]
        sn = c.json("get", "snapshot", sid, "--cluster", self.c2)["snapshot"]
        self.assertEqual((sn["name"], sn["sourceVolumeId"]), ("nightly", vid))
        self.assertEqual(c.run("unmanage", "volume", vid, "--cluster", self.c2).returncode, 1)
        back = c.json("unmanage", "snapshot", sid, "--cluster", self.c2)
        self.assertEqual(back["reference"]["source-name"], "import/cli-disk.img@nightly")
        with open(os.path.join(imp, "cli-disk.img@nightly"), "rb") as f:
            self.assertEqual(f.read(), snap_data)
        os.remove(os.path.join(imp, "cli-disk.img@nightly"))

        back = c.json("unmanage", "volume", vid, "--cluster", self.c2)
        self.assertEqual(back["reference"]["source-name"], "import/cli-disk.img")
        with open(os.path.join(imp, "cli-disk.img"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(c.run("unmanage", "volume", vid, "--cluster", self.c2).returncode, 4)
        os.remove(os.path.join(imp, "cli-disk.img"))
        os.remove(os.path.join(imp, "odd.img"))

    def test_consistency_group_and_group_snapshot_lifecycle(self):
        c = self.cli
        vols = [c.json("create", "volume", "--cluster", self.c1, "--name", f"cg-{n}", "--size",
                       "1MiB")["volume"]["id"] for n in ("data", "log", "conf")]
        g = c.json("create", "consistency-group", "--cluster", self.c1, "--name", "orders",
                   "--volume", vols[0], "--volume", vols[1], "--description", "db")
        g = g["consistencyGroup"]
        self.assertEqual((g["status"], g["volumeIds"]), ("available", vols[:2]))
        for args, kind in ((["list", "consistency-groups"], "consistencyGroup"),
                           (["get", "consistency-group", g["id"]], "consistencyGroup")):
            with self.subTest(args=args):
                api = json.loads(c.run(*args, "-o", "json", check=0).stdout)
                self.assertEqual(yaml_load(c.run(*args, "-o", "yaml", check=0).stdout), api)
                t = c.run(*args, check=0).stdout
                self.assertEqual(t.splitlines()[0].split()[:4], ["ID", "NAME", "STATUS", "MEMBERS"])
                self.assertIn("2", t.splitlines()[1].split())
                w = c.run(*args, "-o", "wide", check=0).stdout
                self.assertIn("CLUSTER", w.splitlines()[0])
                self.assertEqual(c.run(*args, "-o", "name", check=0).stdout.strip(),
                                 f"{kind}/{g['id']}")
        # Bad input: refused by the service (1, the field named) or by dmsctl (2).
        p = c.run("create", "consistency-group", "--cluster", self.c1, "--name", "bad name")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("name", p.stderr)
        p = c.run("create", "consistency-group", "--cluster", self.c1, "--name", "x",
                  "--volume", vols[0])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("volumeIds[0]", p.stderr)
        self.assertEqual(c.run("update", "consistency-group", g["id"]).returncode, 2)
        self.assertEqual(c.run("reset", "consistency-group", g["id"], "--status", "gone")
                         .returncode, 2)
        self.assertEqual(c.run("create", "cg-snapshot").returncode, 2)
        self.assertEqual(c.run("get", "consistency-group", "0b6f4c7e-2a0e-4d4e-8f55-7c1a2b3c4d5e")
                         .returncode, 4)
        u = c.json("update", "consistency-group", g["id"], "--add-volume", vols[2],
                   "--remove-volume", vols[0], "--name", "orders-db")["consistencyGroup"]
        self.assertEqual((u["name"], u["volumeIds"]), ("orders-db", vols[1:]))
        self.wait_idle()
        p = c.run("create", "cg-snapshot", "--group", g["id"], "--name", "nightly", "--wait",
                  "-o", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        w = json.loads(p.stdout)["workflow"]
        self.assertEqual((w["type"], w["state"]), ("CREATE_CG_SNAPSHOT", "COMPLETED"))
        sid = w["result"]["cgSnapshotId"]
        listed = c.json("list", "cg-snapshots", "--group", g["id"])["cgSnapshots"]
        self.assertEqual([x["id"] for x in listed], [sid])
        self.assertIn("GROUP", c.run("list", "cg-snapshots", check=0).stdout.splitlines()[0])
        members = c.json("get", "cg-snapshot", sid, "--members")["members"]
        self.assertEqual([m["volumeId"] for m in members], vols[1:])
        t = c.run("get", "cg-snapshot", sid, "--members", check=0).stdout
        self.assertEqual(t.splitlines()[0].split(), ["VOLUME", "SNAPSHOT", "SIZE"])
        self.assertEqual(c.json("get", "cg-snapshot", sid)["cgSnapshot"]["status"], "available")
        # A group made from the group snapshot: a new volume per member.
        self.assertEqual(c.run("create", "consistency-group", "--name", "x", "--cluster", self.c1,
                               "--from-cg-snapshot", sid).returncode, 2)
        p = c.run("create", "consistency-group", "--name", "orders-copy", "--from-cg-snapshot",
                  sid, "--wait", "-o", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        w = json.loads(p.stdout)["workflow"]
        self.assertEqual(w["type"], "CREATE_CONSISTENCY_GROUP")
        copy = c.json("get", "consistency-group", w["result"]["consistencyGroupId"])
        copy = copy["consistencyGroup"]
        self.assertEqual((copy["status"], len(copy["volumeIds"])), ("available", 2))
        c.run("delete", "consistency-group", copy["id"], check=0)
        for v in copy["volumeIds"]:
            c.run("delete", "volume", v, "--cluster", self.c1, check=0)
        # Protected while the group snapshot exists.
        p = c.run("delete", "consistency-group", g["id"])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("group snapshot", p.stderr)
        p = c.run("delete", "snapshot", members[0]["snapshotId"], "--cluster", self.c1)
        self.assertEqual(p.returncode, 1, p.stderr)
        c.run("delete", "cg-snapshot", sid, check=0)
        self.assertEqual(c.run("get", "cg-snapshot", sid).returncode, 4)
        c.run("reset", "consistency-group", g["id"], "--status", "error", check=0)
        self.assertEqual(c.json("get", "consistency-group", g["id"])["consistencyGroup"]["status"],
                         "error")
        c.run("delete", "consistency-group", g["id"], "--force", check=0)
        self.assertEqual(c.run("get", "consistency-group", g["id"]).returncode, 4)
        for v in vols:  # the volumes stay and can be deleted now
            c.run("delete", "volume", v, "--cluster", self.c1, check=0)

    def test_full_copies_and_group_thick_clone(self):
        c = self.cli
        self.wait_idle()
        vols = []
        for n in range(2):
            v = c.json("create", "volume", "--cluster", self.c1, "--name", f"fc-src-{n}",
                       "--size", "4MiB")["volume"]
            with open(v["devicePath"], "r+b") as f:
                f.write(bytes([n + 7]) * MIB)
            vols.append(v)
        g = c.json("create", "consistency-group", "--cluster", self.c1, "--name", "fc-db",
                   "--volume", vols[0]["id"], "--volume", vols[1]["id"])["consistencyGroup"]

        def device(cluster, vid, project="copies"):
            return c.json("get", "volume", vid, "--cluster", cluster, "--project",
                          project)["volume"]["devicePath"]

        def data(path):
            with open(path, "rb") as f:
                return f.read()

        # Bad input: usage errors (2) before anything is sent, refusals (1) naming the field.
        self.assertEqual(c.run("create", "copy-set", "--name", "x").returncode, 2)
        self.assertEqual(c.run("create", "copy-set", "--group", g["id"], "--name", "x",
                               "--count", "9").returncode, 2)
        p = c.run("create", "copy-set", "--group", g["id"], "--name", "bad name")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("name", p.stderr)
        p = c.run("create", "copy-set", "--group", g["id"], "--name", "x", "--volume",
                  vols[0]["id"])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("volumeIds", p.stderr)
        # 5: three copies do not fit under --max-running-workflows 2; nothing is made.
        p = c.run("create", "copy-set", "--group", g["id"], "--name", "three", "--count", "3")
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertEqual(c.json("list", "copy-sets", "--group", g["id"])["copySets"], [])

        p = c.run("create", "copy-set", "--group", g["id"], "--name", "fc", "--count", "2",
                  "--cluster", self.c2, "--project", "copies", "--wait", check=0)
        self.assertIn("copy 1", p.stderr)
        self.assertIn("copy 2", p.stderr)
        self.assertIn("100%", p.stderr)
        self.assertIn("synchronized", p.stdout)  # the table of the set after the wait
        sets = c.json("list", "copy-sets", "--group", g["id"])["copySets"]
        self.assertEqual(len(sets), 1)
        cs = sets[0]
        for copy in cs["copies"]:
            self.assertEqual(copy["status"], "synchronized")
            for i, v in enumerate(copy["volumes"]):
                self.assertEqual(data(device(self.c2, v["volumeId"])),
                                 data(vols[i]["devicePath"]))
        for fmt in ("json", "yaml", "table", "wide", "name"):
            with self.subTest(fmt=fmt):
                out = c.run("get", "copy-set", cs["id"], "--group", g["id"], "-o", fmt,
                            check=0).stdout
                if fmt == "json":
                    self.assertEqual(json.loads(out)["copySet"]["id"], cs["id"])
                elif fmt == "yaml":
                    self.assertEqual(yaml_load(out)["copySet"]["id"], cs["id"])
                elif fmt == "name":
                    self.assertEqual(out.strip(), "copySet/" + cs["id"])
                else:
                    self.assertIn("1:synchronized 2:synchronized", out)
        self.assertEqual(c.run("get", "copy-set", "0b6f4c7e-2a0e-4d4e-8f55-7c1a2b3c4d5e",
                               "--group", g["id"]).returncode, 4)

        # The sources change; resynchronize copy 2 brings it forward, copy 1 stays.
        old = data(vols[0]["devicePath"])
        with open(vols[0]["devicePath"], "r+b") as f:
            f.write(b"\x55" * MIB)
        new = data(vols[0]["devicePath"])
        c.run("resync", "copy-set", cs["id"], "--group", g["id"], "--copy", "2", "--wait",
              "--no-progress", check=0)
        cs = c.json("get", "copy-set", cs["id"], "--group", g["id"])["copySet"]
        self.assertEqual(data(device(self.c2, cs["copies"][1]["volumes"][0]["volumeId"])), new)
        self.assertEqual(data(device(self.c2, cs["copies"][0]["volumes"][0]["volumeId"])), old)
        # Restore needs --confirm; copy 1 brings the old data back.
        p = c.run("restore", "copy-set", cs["id"], "--group", g["id"], "--copy", "1")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("confirm", p.stderr)
        self.assertEqual(data(vols[0]["devicePath"]), new)
        c.run("restore", "copy-set", cs["id"], "--group", g["id"], "--copy", "1", "--confirm",
              "--wait", "--no-progress", check=0)
        self.assertEqual(data(vols[0]["devicePath"]), old)
        # Detach: the copies become ordinary volumes; then the group can go.
        p = c.run("delete", "consistency-group", g["id"])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("detach", p.stderr)
        d = c.json("detach", "copy-set", cs["id"], "--group", g["id"])["copySet"]
        self.assertEqual([x["status"] for x in d["copies"]], ["detached", "detached"])
        self.assertEqual(c.run("activate", "copy-set", cs["id"], "--group", g["id"]).returncode, 1)

        # A group snapshot thick cloned into a new group on the other cluster.
        sid = c.json("create", "cg-snapshot", "--group", g["id"], "--name", "fc-s", "--wait",
                     "--no-progress")["workflow"]["result"]["cgSnapshotId"]
        p = c.run("clone", "cg-snapshot", sid, "--name", "fc-db-dr", "--dst-cluster", self.c2,
                  "--dst-project", "dr", "--verify", "--wait", check=0)
        self.assertIn("100%", p.stderr)
        made = [x for x in c.json("list", "consistency-groups")["consistencyGroups"]
                if x["name"] == "fc-db-dr"]
        self.assertEqual(len(made), 1)
        self.assertEqual((made[0]["status"], made[0]["clusterId"], len(made[0]["volumeIds"])),
                         ("available", self.c2, 2))
        self.assertEqual(c.run("clone", "cg-snapshot", sid).returncode, 2)  # --name is required
        c.run("delete", "consistency-group", made[0]["id"], check=0)
        c.run("delete", "cg-snapshot", sid, check=0)
        c.run("delete", "consistency-group", g["id"], check=0)

    def test_refresh_and_detach(self):
        c = self.cli
        p = c.run("refresh", "clusters", "--wait", check=0)
        self.assertIn("...done.", p.stderr)
        wid = c.run("refresh", "clusters", self.c1, check=0).stdout.strip()
        self.assertRegex(wid, r"^[0-9a-f-]{36}$")
        c.run("get", "workflow", wid, "--watch", "--no-progress", check=0)
        extra = os.path.join(self.root, "c3")
        c.run("attach", "cluster", "file://" + extra, "--wait", "--no-progress", check=0)
        c3 = [x["id"] for x in c.json("list", "clusters")["clusters"]
              if x["apiEndpoints"] == ["file://" + extra]][0]
        c.run("detach", "cluster", c3, check=0)
        self.assertEqual(c.run("get", "cluster", c3).returncode, 4)

    def test_repair_a_cluster_that_lost_its_metadata(self):
        c = self.cli
        extra = os.path.join(self.root, "c4")
        c.run("attach", "cluster", "file://" + extra, "--wait", "--no-progress", check=0)
        c4 = [x["id"] for x in c.json("list", "clusters")["clusters"]
              if x["apiEndpoints"] == ["file://" + extra]][0]
        vol = c.json("create", "volume", "--cluster", c4, "--name", "keep", "--size", "1MiB")
        c.run("detach", "cluster", c4, check=0)
        for f in ("cluster.db", "cluster.db-wal", "cluster.db-shm"):
            if os.path.exists(os.path.join(extra, f)):
                os.remove(os.path.join(extra, f))
        c.run("attach", "cluster", "file://" + extra, "--wait", "--no-progress", check=0)
        status = c.json("get", "cluster", c4)["cluster"]["clusterConnectionStatus"]
        self.assertEqual(status["accessConnectionStatus"], "NeedsRepair")
        self.assertIn("cluster.db is missing", status["message"])
        self.assertEqual(c.run("list", "volumes", "--cluster", c4).returncode, 1)
        p = c.run("repair", "cluster", c4, "--wait", "--no-progress", check=0)
        report = yaml_load(p.stdout)
        self.assertEqual((report["volumes"], report["snapshots"]), (1, 0))
        vols = c.json("list", "volumes", "--cluster", c4)["volumes"]
        self.assertEqual([v["id"] for v in vols], [vol["volume"]["id"]])
        # Nothing more to repair; an unknown cluster; no id at all.
        self.assertEqual(c.run("repair", "cluster", c4).returncode, 1)
        self.assertEqual(c.run("repair", "cluster", "00000000-0000-4000-8000-000000000000")
                         .returncode, 4)
        self.assertEqual(c.run("repair", "cluster").returncode, 2)
        c.run("detach", "cluster", c4, check=0)

    def test_service_credentials_pem_out_and_lbcli_hint(self):
        pem = os.path.join(self.root, "dms.pem")
        p = self.cli.run("get", "service-credentials", "--pem-out", pem, check=0)
        with open(pem) as f:
            text = f.read()
        self.assertTrue(text.startswith("-----BEGIN PUBLIC KEY-----"), text)
        key_id = self.cli.json("get", "service-credentials")["pubKeyId"]
        self.assertIn(f"lbcli create credential --project-name=system --type=rsa256pubkey "
                      f"--id={key_id} {pem}", p.stderr)

    # -- users and source servers -----------------------------------------------------------------

    def login_as(self, home, username, password):
        """A client of its own logged in as `username`, and the login's result."""
        c = Cli(os.path.join(self.root, home))
        p = c.run("login", "--endpoint", self.server.endpoint, "--username", username,
                  "--password-stdin", input=password + "\n")
        return c, p

    def usernames(self):
        return [u["username"] for u in self.cli.json("list", "users")["users"]]

    def test_create_list_set_password_and_delete_a_user(self):
        c = self.cli
        p = c.run("create", "user", "cli-agent", "--role", "agent", "--password-stdin", "-o",
                  "json", input="agent-password-1\n", check=0)
        u = json.loads(p.stdout)["user"]
        self.assertEqual((u["username"], u["role"]), ("cli-agent", "agent"))
        self.assertNotIn("password", u)
        listed = c.json("list", "users")
        self.assertIn(("cli-agent", "agent"),
                      [(x["username"], x["role"]) for x in listed["users"]])
        self.assertEqual(yaml_load(c.run("list", "users", "-o", "yaml", check=0).stdout), listed)
        t = c.run("list", "users", check=0).stdout.splitlines()
        self.assertEqual(t[0].split(), ["USERNAME", "ROLE", "CREATED"])
        self.assertIn(["cli-agent", "agent"], [line.split()[:2] for line in t[1:]])
        self.assertIn("PASSWORD-CHANGED", c.run("list", "users", "-o", "wide", check=0).stdout)
        self.assertIn("user/cli-agent", c.run("list", "users", "-o", "name",
                                              check=0).stdout.splitlines())
        p = c.run("create", "user", "cli-agent", "--role", "agent", "--password-stdin",
                  input="agent-password-1\n")
        self.assertEqual(p.returncode, 1, p.stderr)  # it exists
        # The agent logs in; it may register sources and nothing else.
        agent, p = self.login_as("home-agent", "cli-agent", "agent-password-1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(agent.run("list", "clusters").returncode, 3)
        # A new password: the old one is refused, the new one works.
        p = c.run("set", "password", "cli-agent", "--password-stdin",
                  input="agent-password-2\n", check=0)
        self.assertIn("cli-agent", p.stderr)
        self.assertEqual(p.stdout, "")
        _, p = self.login_as("home-agent-old", "cli-agent", "agent-password-1")
        self.assertEqual(p.returncode, 3, p.stderr)
        _, p = self.login_as("home-agent-new", "cli-agent", "agent-password-2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(c.run("set", "password", "nobody", "--password-stdin",
                               input="agent-password-3\n").returncode, 4)
        # Deleted: gone from the list, and a second delete is not found.
        c.run("delete", "user", "cli-agent", check=0)
        self.assertNotIn("cli-agent", self.usernames())
        self.assertEqual(c.run("delete", "user", "cli-agent").returncode, 4)

    def test_user_commands_refuse_bad_input(self):
        c = self.cli
        create = ["create", "user", "cli-bad", "--role", "viewer", "--password-stdin"]
        p = c.run("create", "user", "cli-bad", "--role", "root", "--password-stdin",
                  input="long-enough-password\n")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--role", p.stderr)
        p = c.run("create", "user", "cli-bad", "--password-stdin", input="long-enough-password\n")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--role", p.stderr)
        # --password-stdin is the only way to give a password.
        for args in (["create", "user", "cli-bad", "--role", "viewer"],
                     ["set", "password", "admin"]):
            with self.subTest(args=args):
                p = c.run(*args, input="long-enough-password\n")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("--password-stdin", p.stderr)
        p = c.run("create", "user", "cli-bad", "--role", "viewer", "--password",
                  "long-enough-password")
        self.assertEqual(p.returncode, 2, p.stderr)
        # An empty first line, or no input at all.
        for args in (create, ["set", "password", "admin", "--password-stdin"]):
            for given in ("\n", ""):
                with self.subTest(args=args, input=given):
                    p = c.run(*args, input=given)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn("--password-stdin", p.stderr)
        # The service's rule: at least 8 bytes (1, the field named).
        p = c.run(*create, input="short\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("password", p.stderr)
        self.assertNotIn("cli-bad", self.usernames())
        # The admin's password did not change: the shared client logs in with it still.
        _, p = self.login_as("home-admin-again", "admin", PASSWORD)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_a_viewer_may_not_manage_users(self):
        c = self.cli
        c.run("create", "user", "cli-viewer", "--role", "viewer", "--password-stdin",
              input="viewer-password\n", check=0)
        try:
            viewer, p = self.login_as("home-viewer", "cli-viewer", "viewer-password")
            self.assertEqual(p.returncode, 0, p.stderr)
            viewer.run("list", "clusters", check=0)  # reading is what it may do
            p = viewer.run("create", "user", "cli-x", "--role", "agent", "--password-stdin",
                           input="agent-password\n")
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assertIn("PERMISSION_DENIED", p.stderr)
            for args, given in ((["list", "users"], None),
                                (["delete", "user", "admin"], None),
                                (["set", "password", "admin", "--password-stdin"],
                                 "viewer-chosen-password\n")):
                with self.subTest(args=args):
                    self.assertEqual(viewer.run(*args, input=given).returncode, 3)
            self.assertNotIn("cli-x", self.usernames())
        finally:
            c.run("delete", "user", "cli-viewer", check=0)

    def register_source(self, body):
        """Registers a source as its SMS agent does; answers its id."""
        import urllib.request  # noqa: PLC0415
        req = urllib.request.Request(
            self.server.endpoint + "/v3/sources", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Auth-Token": self.admin_token()})
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(r.status, 200)
            sid = json.loads(r.read())["id"]
        self.assertRegex(sid, r"^[0-9a-f]{32}$")
        return sid

    def test_source_servers_list_get_and_delete(self):
        c = self.cli
        columns = ["ID", "NAME", "IP", "OS", "STATE", "CYCLE", "CONNECTED", "LAST-VISIT"]
        t = c.run("list", "source-servers", check=0).stdout.splitlines()
        self.assertEqual([line.split() for line in t], [columns])  # no rows
        self.assertEqual(c.json("list", "source-servers")["sourceServers"], [])

        sid = self.register_source(SOURCE)
        listed = c.json("list", "source-servers")
        self.assertEqual([(s["id"], s["name"], s["state"], s["ip"], s["osType"])
                          for s in listed["sourceServers"]],
                         [(sid, "web01", "waiting", "10.0.0.5", "LINUX")])
        self.assertEqual(yaml_load(c.run("list", "source-servers", "-o", "yaml",
                                         check=0).stdout), listed)
        t = c.run("list", "source-servers", check=0).stdout.splitlines()
        self.assertEqual(t[0].split(), columns)
        self.assertEqual(t[1].split()[:6], [sid, "web01", "10.0.0.5", "LINUX", "waiting",
                                            "checking"])
        w = c.run("list", "source-servers", "-o", "wide", check=0).stdout.splitlines()
        self.assertGreater(len(w[0].split()), len(columns))
        self.assertEqual(c.run("list", "source-servers", "-o", "name", check=0).stdout,
                         f"sourceServer/{sid}\n")

        got = c.json("get", "source-server", sid)["sourceServer"]
        self.assertEqual((got["id"], got["state"]), (sid, "waiting"))
        self.assertEqual([(d["name"], d["size"]) for d in got["disks"]],
                         [("/dev/vda", "10737418240")])
        self.assertEqual(got["report"]["name"], "web01")
        self.assertTrue(all(x["result"] == "OK" for x in got["checks"]), got["checks"])
        y = yaml_load(c.run("get", "source-server", sid, "-o", "yaml", check=0).stdout)
        self.assertEqual(y["sourceServer"]["disks"], got["disks"])
        self.assertEqual(c.run("get", "source-server", sid, "-o", "name", check=0).stdout,
                         f"sourceServer/{sid}\n")
        t = c.run("get", "source-server", sid, check=0).stdout
        self.assertEqual(t.splitlines()[0].split(), columns)
        self.assertNotIn("FAILED-CHECK", t)

        # One that fails a check (its boot loader) is unavailable; its table says why.
        bad = dict(SOURCE, name="web02", ip="10.0.0.6", boot_loader="LILO",
                   networks=[{"mac": "aa:bb:cc:dd:ee:02", "mtu": 1500}])
        bid = self.register_source(bad)
        t = c.run("get", "source-server", bid, check=0).stdout
        self.assertIn("unavailable", t.splitlines()[1].split())
        self.assertRegex(t, r"\nFAILED-CHECK +RESULT +CODE +MESSAGE\n"
                            r"boot_loader +ERROR +DMS\.3002 +only GRUB")

        # Filters, paging (newest first) and bad filters.
        self.assertEqual([s["id"] for s in c.json("list", "source-servers", "--state",
                                                   "waiting")["sourceServers"]], [sid])
        self.assertEqual([s["id"] for s in c.json("list", "source-servers", "--name",
                                                   "web02")["sourceServers"]], [bid])
        self.assertEqual(c.json("list", "source-servers", "--ip", "10.9.9.9")["sourceServers"],
                         [])
        page = c.json("list", "source-servers", "--page-size", "1")
        self.assertEqual([s["id"] for s in page["sourceServers"]], [bid])
        self.assertTrue(page["nextPageToken"])
        p = c.run("list", "source-servers", "--page-size", "1", check=0)
        self.assertIn("--page-token", p.stderr)
        second = c.json("list", "source-servers", "--page-size", "1", "--page-token",
                        page["nextPageToken"])
        self.assertEqual([s["id"] for s in second["sourceServers"]], [sid])
        p = c.run("list", "source-servers", "--state", "bogus")
        self.assertEqual(p.returncode, 1, p.stderr)  # the service's 400
        self.assertIn("state", p.stderr)
        p = c.run("list", "source-servers", "--migration-cycle", "bogus")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("migrationCycle", p.stderr)
        for flag, value in (("--connected", "maybe"), ("--page-size", "0"),
                            ("--page-size", "1001")):
            with self.subTest(flag=flag, value=value):
                p = c.run("list", "source-servers", flag, value)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(flag, p.stderr)

        # Deleted: get and delete then find nothing.
        for x in (sid, bid):
            c.run("delete", "source-server", x, check=0)
        self.assertEqual(c.run("get", "source-server", sid).returncode, 4)
        self.assertEqual(c.run("delete", "source-server", sid).returncode, 4)
        self.assertEqual(c.json("list", "source-servers")["sourceServers"], [])

    # -- exit codes -------------------------------------------------------------------------------

    def test_exit_codes(self):
        c = self.cli
        self.assertEqual(c.run("version").returncode, 0)
        self.assertEqual(c.run("list", "clusters", "--bogus").returncode, 2)
        self.assertEqual(c.run("create", "volume", "--cluster", self.c1, "--name", "x",
                               "--size", "12XB").returncode, 2)
        # 1: the service refused (a bad name), message on stderr naming the field.
        p = c.run("create", "volume", "--cluster", self.c1, "--name", "bad name", "--size", "1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("name", p.stderr)
        # 3: a forged token, and no token at all.
        p = c.run("list", "clusters", env={"DMS_TOKEN": "a.b.c"})
        self.assertEqual(p.returncode, 3, p.stderr)
        p = Cli(os.path.join(self.root, "nobody")).run("list", "clusters", "--endpoint",
                                                        self.server.endpoint)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("dmsctl login", p.stderr)
        # 4
        self.assertEqual(c.run("get", "workflow", "00000000-0000-4000-8000-000000000000")
                         .returncode, 4)
        # 5: two clones run at most (serve --max-running-workflows 2).
        self.wait_idle()
        c.run(*self.clone_args(), check=0)
        c.run(*self.clone_args(), check=0)
        p = c.run(*self.clone_args())
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn("retry after", p.stderr)
        # 6: waiting longer than --timeout.
        self.wait_idle()
        p = c.run(*self.clone_args(), "--wait", "--timeout", "1")
        self.assertEqual(p.returncode, 6, p.stderr)
        # 7: a workflow that ends CANCELLED, and one that ends FAILED.
        self.wait_idle()
        wid = c.run(*self.clone_args(), check=0).stdout.strip()
        c.run("cancel", "workflow", wid, check=0)
        p = c.run("get", "workflow", wid, "--watch", "--no-progress")
        self.assertEqual(p.returncode, 7, p.stderr)
        foreign = os.path.join(self.root, "foreign")
        os.makedirs(foreign, exist_ok=True)
        with open(os.path.join(foreign, "f"), "w") as f:
            f.write("x")
        p = c.run("attach", "cluster", "file://" + foreign, "--wait")
        self.assertEqual(p.returncode, 7, p.stderr)
        self.assertIn("...failed:", p.stderr)
        self.wait_idle()

    # -- configuration and login ------------------------------------------------------------------

    def test_config_file_is_0600_and_a_looser_one_is_refused(self):
        home = os.path.join(self.root, "home-perm")
        c = Cli(home)
        c.run("login", "--endpoint", self.server.endpoint, "--password-stdin",
              input=PASSWORD + "\n", check=0)
        path = os.path.join(home, ".config", "dmsctl", "config.json")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["contexts"]["default"]["endpoint"], self.server.endpoint)
        c.run("list", "clusters", check=0)
        os.chmod(path, 0o644)
        p = c.run("list", "clusters")
        self.assertEqual(p.returncode, 1)
        self.assertIn("chmod 600 " + path, p.stderr)
        self.assertNotIn(cfg["contexts"]["default"]["token"], p.stderr)
        os.chmod(path, 0o600)

    def test_environment_overrides_the_config_file(self):
        # No config file at all: endpoint and token from the environment.
        p = Cli(os.path.join(self.root, "home-empty")).run(
            "list", "clusters", "-o", "json",
            env={"DMS_ENDPOINT": self.server.endpoint, "DMS_TOKEN": self.admin_token()})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), self.cli.json("list", "clusters"))
        # DMS_ENDPOINT wins over the context's endpoint (nothing listens on port 1).
        p = self.cli.run("list", "clusters", env={"DMS_ENDPOINT": "http://127.0.0.1:1"})
        self.assertEqual(p.returncode, 3, p.stderr)  # and the context's token is not sent there
        p = self.cli.run("list", "clusters", env={"DMS_ENDPOINT": "http://127.0.0.1:1",
                                                  "DMS_TOKEN": "x"})
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("UNAVAILABLE", p.stderr)
        # --endpoint wins over DMS_ENDPOINT.
        p = self.cli.run("list", "clusters", "--endpoint", self.server.endpoint,
                         env={"DMS_ENDPOINT": "http://127.0.0.1:1"})
        self.assertEqual(p.returncode, 0, p.stderr)

    def admin_token(self):
        with open(os.path.join(self.root, "home", ".config", "dmsctl", "config.json")) as f:
            return json.load(f)["contexts"]["default"]["token"]

    def test_wrong_password_and_logout(self):
        home = os.path.join(self.root, "home-logout")
        c = Cli(home)
        p = c.run("login", "--endpoint", self.server.endpoint, "--username", "nobody",
                  "--password-stdin", input="wrong\n")
        self.assertEqual(p.returncode, 3)
        c.run("login", "--endpoint", self.server.endpoint, "--password-stdin",
              input=PASSWORD + "\n", check=0)
        c.run("list", "clusters", check=0)
        with open(os.path.join(home, ".config", "dmsctl", "config.json")) as f:
            old = json.load(f)["contexts"]["default"]["token"]
        c.run("logout", check=0)
        self.assertEqual(c.run("list", "clusters").returncode, 3)
        # The old token was revoked on the service, not just forgotten here. Logging out revokes
        # every token of the user, so log the shared client in again afterwards.
        self.assertEqual(c.run("list", "clusters", env={"DMS_TOKEN": old}).returncode, 3)
        self.cli.run("login", "--endpoint", self.server.endpoint, "--password-stdin",
                     input=PASSWORD + "\n", check=0)

    def test_tls_endpoint_with_ca_cert_or_insecure(self):
        root = os.path.join(self.root, "tls")
        os.makedirs(root, exist_ok=True)
        cert, key = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                        "/CN=dms-test", "-days", "1", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        srv = Server(root, "--tls-cert", cert, "--tls-key", key)
        try:
            endpoint = srv.endpoint.replace("http://", "https://")
            c = Cli(os.path.join(root, "home"))
            login = ["login", "--endpoint", endpoint, "--password-stdin"]
            p = c.run(*login, input=PASSWORD + "\n")
            self.assertEqual(p.returncode, 1, p.stderr)  # the system store does not trust it
            self.assertIn("certificate verify failed", p.stderr)
            c.run(*login, "--ca-cert", cert, input=PASSWORD + "\n", check=0)
            c.run("list", "clusters", check=0)  # the context remembers the CA file
            other = Cli(os.path.join(root, "home2"))
            other.run(*login, "--insecure", input=PASSWORD + "\n", check=0)
            other.run("list", "clusters", check=0)
        finally:
            srv.stop()

    def test_attach_a_lightbits_cluster_after_importing_the_key(self):
        root = os.path.join(self.root, "lightbits")
        ca = os.path.join(root, "ca")
        here = os.path.dirname(os.path.abspath(__file__))
        emu_dir = os.path.join(here, "..", "lightos_emulator")
        subprocess.run(["bash", os.path.join(emu_dir, "make_test_ca.sh"), ca], check=True)
        ready = os.path.join(root, "ready.json")
        emu = subprocess.Popen([sys.executable, os.path.join(emu_dir, "lightos_emulator.py"),
                                "--port", "0", "--control-port", "0",
                                "--cert", os.path.join(ca, "server.pem"),
                                "--key", os.path.join(ca, "server.key"),
                                "--state-dir", os.path.join(root, "state"),
                                "--create-delay-ms", "50", "--ready-file", ready],
                               stdout=subprocess.DEVNULL)
        srv = None
        try:
            for _ in range(200):
                if os.path.exists(ready):
                    break
                time.sleep(0.05)
            with open(ready) as f:
                ports = json.load(f)
            srv = Server(root, "--cluster-ca-cert", os.path.join(ca, "ca.pem"))
            c = Cli(os.path.join(root, "home"))
            c.run("login", "--endpoint", srv.endpoint, "--password-stdin",
                  input=PASSWORD + "\n", check=0)
            lb = f"127.0.0.1:{ports['port']}"
            p = c.run("attach", "cluster", lb, "--name", "lb1", "--wait")
            self.assertEqual(p.returncode, 7, p.stderr)
            self.assertIn("lbcli create credential --project-name=system "
                          "--type=rsa256pubkey --id=dms-", p.stderr)
            # What the operator does: write the key and import it (the emulator's control API
            # stands in for lbcli), then attach again.
            pem = os.path.join(root, "dms.pem")
            c.run("get", "service-credentials", "--pem-out", pem, check=0)
            key_id = c.json("get", "service-credentials")["pubKeyId"]
            with open(pem) as f:
                body = json.dumps({"id": "system:" + key_id, "pem": f.read()}).encode()
            import urllib.request  # noqa: PLC0415
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{ports['controlPort']}/control/credentials", data=body,
                method="POST"), timeout=10).read()
            c.run("attach", "cluster", lb, "--name", "lb1", "--wait", check=0)
            clusters = c.json("list", "clusters")["clusters"]
            self.assertEqual([(x["name"], x["kind"]) for x in clusters], [("lb1", "lightbits")])
            self.assertEqual(clusters[0]["clusterConnectionStatus"]["accessConnectionStatus"],
                             "Connected")
        finally:
            if srv:
                srv.stop()
            emu.terminate()
            emu.wait(timeout=30)

    # -- help and completion --------------------------------------------------------------------

    def test_every_command_has_help_with_an_example(self):
        commands = [["version"], ["serve"], ["completion"], ["login"], ["logout"],
                    ["get", "service-credentials"], ["attach", "cluster"], ["list", "clusters"],
                    ["get", "cluster"], ["refresh", "clusters"], ["detach", "cluster"],
                    ["create", "volume"], ["list", "volumes"], ["get", "volume"],
                    ["delete", "volume"], ["create", "snapshot"], ["list", "snapshots"],
                    ["get", "snapshot"], ["delete", "snapshot"], ["clone", "volume"],
                    ["clone", "snapshot"], ["list", "workflows"], ["get", "workflow"],
                    ["cancel", "workflow"], ["create", "consistency-group"],
                    ["list", "consistency-groups"], ["get", "consistency-group"],
                    ["update", "consistency-group"], ["reset", "consistency-group"],
                    ["delete", "consistency-group"], ["create", "cg-snapshot"],
                    ["list", "cg-snapshots"], ["get", "cg-snapshot"], ["delete", "cg-snapshot"],
                    ["list", "manageable-volumes"], ["manage", "volume"], ["unmanage", "volume"],
                    ["create", "user"], ["list", "users"], ["delete", "user"],
                    ["set", "password"], ["list", "source-servers"], ["get", "source-server"],
                    ["delete", "source-server"], ["agent"], ["migrate", "source-server"],
                    ["sync", "source-server"], ["cutover", "source-server"],
                    ["stop", "source-server"], ["start", "source-server"]]
        for cmd in commands:
            with self.subTest(cmd=cmd):
                p = self.cli.run(*cmd, "--help")
                self.assertEqual(p.returncode, 0)
                self.assertIn("Example:\n  ", p.stdout)
                example = p.stdout.split("Example:\n", 1)[1].splitlines()[0]
                self.assertIn(" ".join(cmd), example.replace("<(", "").replace("source ", ""))
        top = self.cli.run("--help").stdout
        self.assertIn("6 wait timed out", top)

    def test_completion_scripts(self):
        for shell in ("bash", "zsh"):
            p = self.cli.run("completion", shell, check=0)
            self.assertIn("complete -F _dmsctl dmsctl", p.stdout)
        script = self.cli.run("completion", "bash", check=0).stdout
        out = subprocess.run(
            ["bash", "-c", script + "\nCOMP_WORDS=(dmsctl list cl); COMP_CWORD=2; _dmsctl; "
             "echo ${COMPREPLY[@]}"], capture_output=True, text=True).stdout
        self.assertEqual(out.strip(), "clusters")
        self.assertEqual(self.cli.run("completion", "fish").returncode, 2)


AGENT_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "agent_root")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def write_image(path, mib, slots, seed):
    """A sparse image of `mib` MiB with 1 MiB of seeded random bytes in each of `slots`."""
    import random  # noqa: PLC0415
    rng = random.Random(seed)
    with open(path, "ab") as f:
        f.truncate(mib * MIB)
    with open(path, "r+b") as f:
        for s in slots:
            f.seek(s * MIB)
            f.write(rng.randbytes(MIB))


def write_mbr(path, parts):
    """An MBR partition table: `parts` is [(first MiB, MiB)], primary Linux partitions."""
    import struct  # noqa: PLC0415
    mbr = bytearray(512)
    for i, (first, size) in enumerate(parts):
        e = 446 + 16 * i
        mbr[e + 4] = 0x83
        mbr[e + 8:e + 16] = struct.pack("<II", first * 2048, size * 2048)
    mbr[510:512] = b"\x55\xaa"
    with open(path, "r+b") as f:
        f.write(mbr)


class DmsctlMigrationTest(unittest.TestCase):
    """`dmsctl agent` and the migration commands against a server of their own: a parked
    migration counts as a running workflow (DmsctlTest's server runs 2 at most and its tests wait
    for none to run), and DmsctlTest's source-server test expects no other sources."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="dmsctl-migration-test-")
        cls.addClassCleanup(shutil.rmtree, cls.root, ignore_errors=True)
        cls.server = Server(cls.root)
        # Also when the rest of setUpClass fails (tearDownClass does not run then).
        cls.addClassCleanup(cls.server.stop)
        cls.cli = Cli(os.path.join(cls.root, "home"))
        c = cls.cli
        cls.c1 = login_and_attach(c, cls.server, cls.root, "c1")["c1"]
        c.run("create", "user", "mig-agent", "--role", "agent", "--password-stdin",
              input="mig-agent-password\n", check=0)
        c.run("create", "user", "mig-viewer", "--role", "viewer", "--password-stdin",
              input="mig-viewer-password\n", check=0)
        cls.admin_token = cls.token_of("home")
        cls.agent_token = cls.login("home-agent", "mig-agent", "mig-agent-password")
        cls.viewer = Cli(os.path.join(cls.root, "home-viewer"))
        cls.login("home-viewer", "mig-viewer", "mig-viewer-password")
        # A client with no configuration and no DMS_* variables at all.
        cls.bare = Cli(os.path.join(cls.root, "home-bare"))

    @classmethod
    def login(cls, home, username, password):
        Cli(os.path.join(cls.root, home)).run(
            "login", "--endpoint", cls.server.endpoint, "--username", username,
            "--password-stdin", input=password + "\n", check=0)
        return cls.token_of(home)

    @classmethod
    def token_of(cls, home):
        with open(os.path.join(cls.root, home, ".config", "dmsctl", "config.json")) as f:
            return json.load(f)["contexts"]["default"]["token"]

    def path(self, name):
        return os.path.join(self.root, name)

    def api(self, method, target, body=None, token=None):
        import urllib.request  # noqa: PLC0415
        req = urllib.request.Request(
            self.server.endpoint + target, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": "Bearer " + (token or self.admin_token)})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def migration(self, sid):
        return self.api("GET", f"/api/v1/source-servers/{sid}/migration")["migration"]

    def await_migration(self, sid, pred, what, within=30):
        deadline = time.time() + within
        while True:
            m = self.migration(sid)
            if pred(m):
                return m
            if time.time() > deadline:
                self.fail(f"migration of {sid}: {what} not reached: {m}")
            time.sleep(0.05)

    @staticmethod
    def pass_done(m, n):
        return m["pass"] == n and all(d["pass"] == n and d["ackedOffset"] == d["size"]
                                      for d in m["disks"])

    def agent_tree(self, name, mac):
        """A copy of the fixture tree whose first network has `mac`: the service knows a source by
        its MAC, so each test's agent registers a source of its own."""
        tree = self.path(name)
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(AGENT_ROOT, tree, symlinks=True)
        with open(os.path.join(tree, "sys", "class", "net", "eth0", "address"), "w") as f:
            f.write(mac + "\n")
        return tree

    def start_agent(self, tree, name, disks, log):
        args = [DMSCTL, "agent", "--endpoint", self.server.endpoint, "--root", tree, "--name",
                name, "--exit-after-cutover", "--poll-interval-ms", "100"]
        for d, path in disks:
            args += ["--disk", f"{d}={path}"]
        env = dict(self.bare.env, DMS_TOKEN=self.agent_token)
        with open(log, "w") as err:
            return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)

    def stop_agent(self, proc):
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def await_source(self, name, proc, log):
        for _ in range(300):
            found = self.cli.json("list", "source-servers", "--name", name)["sourceServers"]
            if found:
                self.assertEqual(len(found), 1, found)
                return found[0]
            self.assertIsNone(proc.poll(), self.read(log))
            time.sleep(0.1)
        self.fail("the agent did not register: " + self.read(log))

    def assert_volume_holds(self, vid, image):
        v = self.cli.json("get", "volume", vid, "--cluster", self.c1)["volume"]
        self.assertEqual(v["state"], "Available")
        with open(image, "rb") as f:
            want = f.read()
        with open(v["devicePath"], "rb") as f:
            got = f.read()
        self.assertGreaterEqual(len(got), len(want))
        self.assertTrue(got[:len(want)] == want, f"volume {vid} differs from {image}")
        self.assertEqual(got[len(want):].strip(b"\0"), b"")

    def register_fake(self, name, mac):
        """A source as an SMS agent registers it, with no agent behind it: its migrations park in
        `replicating`, where nothing moves them on."""
        body = dict(SOURCE, name=name, networks=[{"mac": mac, "mtu": 1500}],
                    disks=[{"name": "/dev/vda", "size": 4 * MIB, "partition_style": "GPT"}])
        return self.api("POST", "/v3/sources", body, self.agent_token)["id"]

    # -- the agent's report -----------------------------------------------------------------------

    def test_agent_print_report_describes_exactly_the_stand_in_disks(self):
        sparse, mbr = self.path("report-sparse.img"), self.path("report-mbr.img")
        write_image(sparse, 24, [], 0)
        write_image(mbr, 16, [3], 1)
        write_mbr(mbr, [(1, 7), (8, 8)])
        # No service is needed: a client without endpoint or token.
        p = self.bare.run("agent", "--root", AGENT_ROOT, "--disk", "data=" + sparse, "--disk",
                          "sys=" + mbr, "--name", "mig-report", "--print-report", check=0)
        self.assertEqual(p.stderr, "")
        report = json.loads(p.stdout)
        disks = report["disks"]
        self.assertEqual([(d["name"], d["size"], d["partition_style"]) for d in disks],
                         [("data", 24 * MIB, "MBR"), ("sys", 16 * MIB, "MBR")])
        self.assertEqual(disks[0]["physical_volumes"], [])
        self.assertEqual([(v["index"], v["name"], v["size"]) for v in disks[1]["physical_volumes"]],
                         [(1, "/dev/sys1", 7 * MIB), (2, "/dev/sys2", 8 * MIB)])
        # The tree's storage describes other disks: left out; the rest is the tree's.
        self.assertEqual((report["volume_groups"], report["btrfs_list"]), ([], []))
        self.assertEqual((report["name"], report["hostname"], report["os_version"]),
                         ("mig-report", "web-01", "DEBIAN12_64BIT"))
        self.assertEqual(report["networks"][0]["mac"], "52:54:00:12:34:56")
        self.assertTrue(report["agent_version"].startswith("dmsctl/"))

        # Without --disk: the tree's own disks, partitions and volume groups.
        report = json.loads(self.bare.run("agent", "--root", AGENT_ROOT, "--print-report",
                                          check=0).stdout)
        self.assertEqual([(d["name"], d["size"], d["partition_style"])
                          for d in report["disks"]],
                         [("vda", 20 * 1024 * MIB, "GPT"), ("vdb", 10 * 1024 * MIB, "MBR")])
        self.assertEqual([(v["index"], v["name"], v["file_system"])
                          for v in report["disks"][0]["physical_volumes"]],
                         [(1, "/dev/vda1", "vfat"), (2, "/dev/vda2", "LVM2_member")])
        self.assertEqual(report["volume_groups"][0]["name"], "debian-vg")
        self.assertEqual(report["name"], "web-01")

    def test_agent_refuses_bad_input(self):
        image = self.path("bad-input.img")
        write_image(image, 1, [], 0)
        for spec in ("nameonly", "=x", "d="):
            for extra in ([], ["--print-report"]):
                with self.subTest(disk=spec, extra=extra):
                    p = self.bare.run("agent", "--root", AGENT_ROOT, "--disk", spec, *extra,
                                      timeout=30)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn(f"--disk {spec}: must be NAME=PATH", p.stderr)
        cases = [
            (["--disk", "d=/no/such/file"], "--disk d: /no/such/file"),
            (["--disk", "d=" + self.root], "not a regular file"),
            (["--disk", "a=" + image, "--disk", "a=" + image], "--disk a: given twice"),
            (["--disk", "a/b=" + image], "--disk a/b="),
        ]
        for args, says in cases:
            with self.subTest(args=args):
                p = self.bare.run("agent", "--root", AGENT_ROOT, *args, "--print-report")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(says, p.stderr)
                self.assertEqual(p.stdout, "")
        p = self.bare.run("agent", "--root", "/no/such/dir", "--print-report")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--root /no/such/dir", p.stderr)
        empty = self.path("empty-root")
        os.makedirs(empty, exist_ok=True)
        p = self.bare.run("agent", "--root", empty, "--print-report")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("os-release", p.stderr)
        for value in ("0", "49", "600001"):
            with self.subTest(poll=value):
                p = self.bare.run("agent", "--root", AGENT_ROOT, "--poll-interval-ms", value,
                                  "--print-report")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("--poll-interval-ms", p.stderr)

        # Nowhere to go (2, usage), then nothing to prove who it is (3).
        agent = ["agent", "--root", AGENT_ROOT, "--disk", "d=" + image, "--poll-interval-ms",
                 "100"]
        p = self.bare.run(*agent, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("no endpoint", p.stderr)
        p = self.bare.run(*agent, "--endpoint", self.server.endpoint, timeout=30)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("not logged in", p.stderr)
        # A viewer's token and a forged one: the service refuses the agent (3), nothing registers.
        for who, token in (("viewer", self.token_of("home-viewer")), ("forged", "a.b.c")):
            with self.subTest(token=who):
                p = self.bare.run(*agent, "--endpoint", self.server.endpoint,
                                  env={"DMS_TOKEN": token}, timeout=30)
                self.assertEqual(p.returncode, 3, p.stderr)
                self.assertIn("the service refuses this agent", p.stderr)
        self.assertEqual(self.cli.json("list", "source-servers", "--name", "web-01")
                         ["sourceServers"], [])

    # -- a migration through the CLI --------------------------------------------------------------

    def test_agent_streams_syncs_and_cuts_over_byte_identical(self):
        c = self.cli
        sys_img, data_img = self.path("full-sys.img"), self.path("full-data.img")
        write_image(sys_img, 16, [1, 2, 9], 11)
        write_mbr(sys_img, [(1, 7), (8, 8)])
        write_image(data_img, 32, [0, 3, 7, 20, 31], 12)
        log = self.path("full-agent.log")
        agent = self.start_agent(self.agent_tree("full-tree", "52:54:00:aa:00:01"), "mig-full",
                                 [("sys", sys_img), ("data", data_img)], log)
        wid = None
        try:
            src = self.await_source("mig-full", agent, log)
            sid = src["id"]
            self.assertEqual((src["state"], src["connected"]), ("waiting", True))
            got = c.json("get", "source-server", sid)["sourceServer"]
            self.assertEqual([(d["name"], d["size"]) for d in got["disks"]],
                             [("sys", str(16 * MIB)), ("data", str(32 * MIB))])
            self.assertEqual(got["reportedBy"], "mig-agent")

            p = c.run("migrate", "source-server", sid, "--cluster", self.c1, "--syncing", check=0)
            wid = p.stdout.strip()
            self.assertRegex(wid, "^" + UUID + "$")
            self.assertIn(f"started workflow {wid}", p.stderr)
            # The full replication (pass 0), then syncing waits for the operator. Holes and
            # zeros were not sent: only the MBR's chunk and the data slots.
            m = self.await_migration(sid, lambda m: m["stage"] == "syncing"
                                     and self.pass_done(m, 0), "pass 0 done")
            self.assertEqual((m["id"], m["syncing"], m["state"]), (wid, True, "SYNCING"))
            self.assertEqual([(d["name"], d["totalBytes"]) for d in m["disks"]],
                             [("sys", str(4 * MIB)), ("data", str(5 * MIB))])
            w = c.json("get", "workflow", wid)["workflow"]
            self.assertEqual((w["type"], w["state"]), ("MIGRATE_SOURCE_SERVER", "RUNNING"))
            self.assertEqual(c.json("get", "source-server", sid)["sourceServer"]["state"],
                             "syncing")

            # 3 MiB of the data disk change; a sync sends them and nothing else.
            write_image(data_img, 32, [5, 6, 7], 13)
            p = c.run("sync", "source-server", sid, check=0)
            self.assertEqual(p.stderr, f"source server {sid}: sync asked\n")
            self.assertEqual(p.stdout, "")
            m = self.await_migration(sid, lambda m: self.pass_done(m, 1), "pass 1 done")
            self.assertEqual([(d["name"], d["passBytes"]) for d in m["disks"]],
                             [("sys", "0"), ("data", str(3 * MIB))])

            write_image(sys_img, 16, [12], 14)
            p = c.run("cutover", "source-server", sid, check=0)
            self.assertEqual(p.stderr, f"source server {sid}: cutover asked\n")
            p = c.run("get", "workflow", wid, "--watch", "--no-progress", "--timeout", "60",
                      "-o", "json", check=0)
            w = json.loads(p.stdout)["workflow"]
            self.assertEqual(w["state"], "COMPLETED", w)
            self.assertEqual(agent.wait(timeout=30), 0, self.read(log))
            vols = w["result"]["volumes"]
            self.assertEqual([v["disk"] for v in vols], ["sys", "data"])
            self.assert_volume_holds(vols[0]["volumeId"], sys_img)
            self.assert_volume_holds(vols[1]["volumeId"], data_img)
            m = self.migration(sid)
            self.assertEqual((m["state"], m["stage"]), ("MIGRATE_SUCCESS", "cutovered"))
            self.assertEqual(m["disks"][0]["passBytes"], str(MIB))  # the cutover pass
            s = c.json("get", "source-server", sid)["sourceServer"]
            self.assertEqual((s["state"], s["migrationCycle"]), ("finished", "cutovered"))
            # It is over: nothing more to sync.
            p = c.run("sync", "source-server", sid)
            self.assertEqual(p.returncode, 4, p.stderr)
            wid = None
        finally:
            self.stop_agent(agent)
            if wid:
                c.run("cancel", "workflow", wid)

    def test_migrate_with_wait_follows_to_the_end_and_prints_the_result(self):
        c = self.cli
        image = self.path("wait-data.img")
        write_image(image, 8, [0, 5], 21)
        log = self.path("wait-agent.log")
        agent = self.start_agent(self.agent_tree("wait-tree", "52:54:00:aa:00:02"), "mig-wait",
                                 [("data", image)], log)
        try:
            sid = self.await_source("mig-wait", agent, log)["id"]
            # Without --syncing the replication's end cuts over by itself.
            p = c.run("migrate", "source-server", sid, "--cluster", self.c1, "--wait",
                      "--timeout", "60", check=0)
            self.assertRegex(p.stderr, f"started workflow {UUID}\n")
            self.assertRegex(p.stderr, f"Migrating source server {sid}: [A-Z]+ +\\d+%")
            self.assertIn(f"Migrating source server {sid}...done.", p.stderr)
            result = yaml_load(p.stdout)  # the workflow's result
            self.assertEqual((result["sourceId"], result["clusterId"]), (sid, self.c1))
            self.assertEqual([v["disk"] for v in result["volumes"]], ["data"])
            self.assertEqual(agent.wait(timeout=30), 0, self.read(log))
            self.assert_volume_holds(result["volumes"][0]["volumeId"], image)
        finally:
            self.stop_agent(agent)

    # -- the action commands' refusals ------------------------------------------------------------

    def test_migration_commands_refuse_what_does_not_apply(self):
        c = self.cli
        unknown = "0123456789abcdef0123456789abcdef"
        for verb in ("sync", "cutover", "stop", "start"):
            with self.subTest(verb=verb):
                p = c.run(verb, "source-server", unknown)
                self.assertEqual(p.returncode, 4, p.stderr)
                self.assertIn(f"NOT_FOUND: source {unknown} has no running migration", p.stderr)
                p = c.run(verb, "source-server")
                self.assertEqual(p.returncode, 2, p.stderr)
        p = c.run("migrate", "source-server", unknown, "--cluster", self.c1)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn(unknown, p.stderr)

        plain = self.register_fake("mig-plain", "aa:bb:cc:00:00:01")
        syncing = self.register_fake("mig-syncing", "aa:bb:cc:00:00:02")
        p = c.run("migrate", "source-server", plain)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--cluster", p.stderr)
        gone = "00000000-0000-4000-8000-000000000000"
        p = c.run("migrate", "source-server", plain, "--cluster", gone)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn(gone, p.stderr)
        p = self.viewer.run("migrate", "source-server", plain, "--cluster", self.c1)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("PERMISSION_DENIED", p.stderr)
        p = c.run("migrate", "source-server", plain, "--cluster", self.c1,
                  env={"DMS_TOKEN": self.agent_token})
        self.assertEqual(p.returncode, 3, p.stderr)
        p = c.run("migrate", "source-server", plain, "--cluster", self.c1, "--disk", "/dev/vdz")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("has no disk /dev/vdz", p.stderr)
        import urllib.error  # noqa: PLC0415
        with self.assertRaises(urllib.error.HTTPError) as e:  # nothing was started
            self.migration(plain)
        self.assertEqual(e.exception.code, 404)

        started = []
        try:
            # Without --syncing: a sync is refused (FAILED_PRECONDITION: 1), naming why.
            w = c.json("migrate", "source-server", plain, "--cluster", self.c1)["workflowId"]
            started.append(w)
            p = c.run("sync", "source-server", plain)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(f"FAILED_PRECONDITION: the migration {w} was started without syncing",
                          p.stderr)
            p = c.run("migrate", "source-server", plain, "--cluster", self.c1)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("under way", p.stderr)

            # With --syncing, before the replication ended (no agent streams): refused too.
            w = c.run("migrate", "source-server", syncing, "--cluster", self.c1, "--syncing",
                      "-o", "name", check=0).stdout.strip()
            self.assertRegex(w, f"^workflow/{UUID}$")
            w = w.split("/")[1]
            started.append(w)
            self.await_migration(syncing, lambda m: m["stage"] == "replicating", "replicating")
            p = c.run("sync", "source-server", syncing)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("is replicating: a sync follows the full replication", p.stderr)
            p = self.viewer.run("stop", "source-server", syncing)
            self.assertEqual(p.returncode, 3, p.stderr)

            # Stop, twice; start, twice.
            p = c.run("stop", "source-server", syncing, check=0)
            self.assertEqual(p.stderr, f"source server {syncing}: stopped\n")
            self.assertEqual(c.json("get", "source-server", syncing)["sourceServer"]["state"],
                             "stopped")
            p = c.run("stop", "source-server", syncing)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(f"the migration {w} is stopped", p.stderr)
            p = c.run("start", "source-server", syncing, check=0)
            self.assertEqual(p.stderr, f"source server {syncing}: started\n")
            self.assertEqual(c.json("get", "source-server", syncing)["sourceServer"]["state"],
                             "replicate")
            p = c.run("start", "source-server", syncing)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("only a stopped or failed one starts again", p.stderr)
            # A second cutover.
            c.run("cutover", "source-server", syncing, check=0)
            p = c.run("cutover", "source-server", syncing)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("cutting over already", p.stderr)
        finally:
            for w in started:
                c.run("cancel", "workflow", w)
        for w in started:
            self.assertEqual(c.run("get", "workflow", w, "--watch", "--no-progress", "--timeout",
                                   "30").returncode, 7)
        # Cancelled: nothing runs any more, and the sources can go.
        for sid in (plain, syncing):
            self.assertEqual(c.run("stop", "source-server", sid).returncode, 4)
            c.run("delete", "source-server", sid, check=0)

    def test_migrate_refuses_a_negative_rate_limit(self):
        # --rate-limit is unsigned: CLI11 alone would wrap -5 into 2^64-5.
        sid = self.register_fake("mig-rate", "aa:bb:cc:00:00:03")
        p = self.cli.run("migrate", "source-server", sid, "--cluster", self.c1,
                         "--rate-limit", "-5")
        if p.returncode == 0:
            self.cli.run("cancel", "workflow", p.stdout.strip())
            self.cli.run("get", "workflow", p.stdout.strip(), "--watch", "--no-progress")
        self.cli.run("delete", "source-server", sid)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--rate-limit", p.stderr)


def yaml_load(text):
    """A reader for the YAML dmsctl writes, independent of its writer: PyYAML when present,
    otherwise Ruby's or Node's parser would do; the Debian package python3-yaml is used."""
    import yaml  # noqa: PLC0415

    return yaml.safe_load(text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
