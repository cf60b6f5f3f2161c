#!/usr/bin/env python3
"""OpenStack's own client against the service's Cinder-compatible routes: Debian's
python3-cinderclient (the `cinder` command) run as an operator runs it, given an endpoint and a
token, against a real `dmsctl serve` on 127.0.0.1 with a local cluster holding files to adopt.

Run: DMSCTL=build/release/dmsctl /usr/bin/python3 tests/cli/test_cinderclient.py
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_dmsctl import PASSWORD, Cli, Server  # noqa: E402

CINDER = shutil.which("cinder", path="/usr/bin:" + os.environ.get("PATH", ""))
GIB = 1 << 30
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class CinderClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="cinderclient-test-")
        cls.server = Server(cls.root)
        cls.cli = Cli(os.path.join(cls.root, "home"))
        cls.cli.run("login", "--endpoint", cls.server.endpoint, "--password-stdin",
                    input=PASSWORD + "\n", check=0)
        # The token an operator hands to OpenStack tools.
        req = urllib.request.Request(
            cls.server.endpoint + "/api/v1/login", method="POST",
            data=json.dumps({"username": "admin", "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            cls.token = json.loads(r.read())["idToken"]
        cls.cluster_dir = os.path.join(cls.root, "c1")
        cls.cli.run("attach", "cluster", "file://" + cls.cluster_dir, "--name", "c1", "--wait",
                    "--no-progress", check=0)
        imp = os.path.join(cls.cluster_dir, "import")
        os.makedirs(imp, exist_ok=True)
        # A sparse 1.5 GiB image with data at both ends, and one whose size is not whole
        # sectors (not safe).
        cls.image = os.path.join(imp, "db-2024.img")
        with open(cls.image, "wb") as f:
            f.write(b"head" * 1024)
            f.seek(3 * GIB // 2 - 4096)
            f.write(b"tail" * 1024)
        with open(cls.image, "rb") as f:
            cls.image_bytes = f.read(4096), os.path.getsize(cls.image)
        with open(os.path.join(imp, "odd.bin"), "wb") as f:
            f.write(b"x" * 1000)
        # A snapshot of the image, made by the tool that made the image: <file>@<snapshot>.
        cls.snap_file = cls.image + "@nightly"
        with open(cls.snap_file, "wb") as f:
            f.write(b"snap" * 1024)
            f.truncate(1 << 30)
        cls.endpoint = cls.server.endpoint + "/v3/proj1"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def cluster_id(self):
        return json.loads(self.cli.run("list", "clusters", "-o", "json",
                                       check=0).stdout)["clusters"][0]["id"]

    def cinder(self, *args, version="3.8", check=0):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        p = subprocess.run(
            [CINDER, "--os-auth-type", "admin_token", "--os-endpoint", self.endpoint,
             "--os-token", self.token, "--os-project-id", "proj1",
             "--os-volume-api-version", version, *args],
            capture_output=True, text=True, env=env, timeout=120)
        if check is not None and p.returncode != check:
            raise AssertionError(f"cinder {' '.join(args)} -> {p.returncode}, wanted {check}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    @staticmethod
    def table(text):
        """The rows of a prettytable as lists of cells."""
        rows = []
        for line in text.splitlines():
            if line.startswith("|"):
                rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        return rows

    def show(self, vid):
        rows = self.table(self.cinder("show", vid).stdout)
        return {r[0]: r[1] for r in rows[1:] if len(r) == 2}

    def wait_status(self, vid, want):
        for _ in range(200):
            got = self.show(vid)["status"]
            if got == want:
                return
            self.assertIn(got, ("creating", want))
            subprocess.run(["sleep", "0.05"])
        self.fail(f"volume {vid} never became {want}")

    def test_list_manage_show_unmanage(self):
        # The summary list, as `cinder manageable-list` prints it.
        rows = self.table(self.cinder("manageable-list", "--detailed", "false", "dms@c1").stdout)
        self.assertEqual(rows[0], ["reference", "size", "safe_to_manage"])
        by_ref = {r[0]: r for r in rows[1:]}
        self.assertEqual(by_ref["{'source-name': 'import/db-2024.img'}"][1:], ["2", "True"])
        self.assertEqual(by_ref["{'source-name': 'import/odd.bin'}"][1:], ["1", "False"])
        # The detailed list says why.
        rows = self.table(self.cinder("manageable-list", "dms@c1#proj1").stdout)
        self.assertEqual(rows[0], ["reference", "size", "safe_to_manage", "reason_not_safe",
                                   "cinder_id", "extra_info"])
        odd = [r for r in rows if r[0] == "{'source-name': 'import/odd.bin'}"][0]
        self.assertEqual(odd[3], "size is not a multiple of 512 bytes")
        # Paging and sorting as Cinder does them: size desc, then one after the marker.
        rows = self.table(self.cinder("manageable-list", "--sort", "size:desc", "--limit", "1",
                                      "dms@c1").stdout)
        self.assertEqual([r[0] for r in rows[1:]], ["{'source-name': 'import/db-2024.img'}"])
        rows = self.table(self.cinder("manageable-list", "--sort", "size:desc", "--marker",
                                      '{"source-name": "import/db-2024.img"}', "dms@c1").stdout)
        self.assertEqual([r[0] for r in rows[1:]], ["{'source-name': 'import/odd.bin'}"])

        # Manage: the client posts to os-volume-manage and reads the volume back.
        p = self.cinder("manage", "dms@c1#proj1", "import/db-2024.img", "--name",
                        "Database 2024", "--description", "adopted by cinderclient",
                        "--metadata", "owner=dba")
        shown = {r[0]: r[1] for r in self.table(p.stdout)[1:] if len(r) == 2}
        vid = shown["id"]
        self.assertRegex(vid, UUID_RE)
        self.assertIn(shown["status"], ("creating", "available"))
        self.assertEqual(shown["name"], "Database 2024")
        self.wait_status(vid, "available")
        info = self.show(vid)
        self.assertEqual(info["size"], "2")
        self.assertEqual(info["description"], "adopted by cinderclient")
        self.assertEqual(info["os-vol-tenant-attr:tenant_id"], "proj1")
        self.assertEqual(info["os-vol-host-attr:host"], "dms@c1#proj1")
        self.assertIn("owner", p.stdout + self.cinder("show", vid).stdout)
        self.assertFalse(os.path.exists(self.image))
        # Listed now as managed, with its id.
        rows = self.table(self.cinder("manageable-list", "dms@c1").stdout)
        managed = [r for r in rows[1:] if r[4] == vid]
        self.assertEqual(len(managed), 1)
        self.assertEqual(managed[0][2:4], ["False", "already managed"])
        # Again: refused, in Cinder's words.
        p = self.cinder("manage", "dms@c1#proj1", managed[0][0].split("'")[3], check=1)
        self.assertIn("The volume is already managed (HTTP 400)", p.stderr)

        # Its snapshot, found beside it, adopted as a snapshot of the managed volume.
        rows = self.table(self.cinder("snapshot-manageable-list", "dms@c1").stdout)
        self.assertEqual(rows[0], ["reference", "size", "safe_to_manage", "source_reference",
                                   "reason_not_safe", "cinder_id", "extra_info"])
        snap_row = [r for r in rows[1:] if r[0] == "{'source-name': 'import/db-2024.img@nightly'}"]
        self.assertEqual(snap_row[0][1:4], ["1", "True", "{'source-name': 'import/db-2024.img'}"])
        p = self.cinder("snapshot-manage", vid, "import/db-2024.img@nightly", "--name", "Nightly")
        snap = {r[0]: r[1] for r in self.table(p.stdout)[1:] if len(r) == 2}
        sid = snap["id"]
        self.assertEqual(snap["volume_id"], vid)
        for _ in range(200):
            shown = {r[0]: r[1] for r in self.table(self.cinder("snapshot-show", sid).stdout)[1:]
                     if len(r) == 2}
            if shown["status"] != "creating":
                break
        self.assertEqual((shown["status"], shown["name"], shown["size"]),
                         ("available", "Nightly", "2"))
        self.assertFalse(os.path.exists(self.snap_file))
        # The volume is not given back while its snapshot is managed.
        p = self.cinder("unmanage", vid, check=1)
        self.assertIn("Invalid volume: Volume status must be available", p.stderr)
        self.cinder("snapshot-unmanage", sid)
        with open(self.snap_file, "rb") as f:
            self.assertEqual(f.read(4096), b"snap" * 1024)
        self.assertEqual(os.path.getsize(self.snap_file), 1 << 30)

        # Unmanage gives every byte back where it was.
        self.cinder("unmanage", vid)
        self.assertTrue(os.path.exists(self.image))
        with open(self.image, "rb") as f:
            self.assertEqual((f.read(4096), os.path.getsize(self.image)), self.image_bytes)
        p = self.cinder("show", vid, check=1)
        self.assertIn("No volume with a name or ID of", p.stderr)
        p = self.cinder("snapshot-show", sid, check=1)
        self.assertIn("No snapshot with a name or ID of", p.stderr)

    def test_errors_in_cinders_words(self):
        p = self.cinder("manageable-list", "dms@nowhere", check=1)
        self.assertIn("Service cinder-volume could not be found on host dms@nowhere. (HTTP 404)",
                      p.stderr)
        p = self.cinder("manageable-list", "--sort", "name", "dms@c1", check=1)
        # (the client sends "name" as display_name)
        self.assertIn("Invalid sort keys passed: display_name (HTTP 400)", p.stderr)
        p = self.cinder("manageable-list", "--marker", "not json", "dms@c1", check=1)
        self.assertIn("Invalid input received: marker not json can not be analysed", p.stderr)
        p = self.cinder("manage", "dms@nowhere", "import/odd.bin", check=1)
        self.assertIn("Host 'dms@nowhere' not found (HTTP 400)", p.stderr)
        p = self.cinder("manage", "dms@c1", "import/odd.bin", check=1)
        self.assertIn("is not safe to manage: size is not a multiple of 512 bytes", p.stderr)
        # From 3.17 a cluster names the place; both at once are refused.
        p = self.cinder("manageable-list", "--cluster", "c1", version="3.17")
        self.assertIn("import/odd.bin", p.stdout)
        # An unknown token is refused before anything is read.
        self.token, good = "not-a-token", self.token
        try:
            p = self.cinder("manageable-list", "dms@c1", check=1)
            self.assertIn("HTTP 401", p.stderr)
        finally:
            self.token = good

    def test_raw_dialect(self):
        """What the client does not show: status codes, fault bodies and version headers."""
        def call(method, path, body=None, headers=None):
            h = {"X-Auth-Token": self.token, "Content-Type": "application/json"}
            h.update(headers or {})
            data = None if body is None else (body if isinstance(body, bytes)
                                              else json.dumps(body).encode())
            req = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                         headers=h)
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), e.read()

        v38 = {"OpenStack-API-Version": "volume 3.8"}
        s, h, b = call("GET", "/manageable_volumes?host=c1", headers=v38)
        self.assertEqual((s, h["OpenStack-API-Version"], h["Vary"]),
                         (200, "volume 3.8", "OpenStack-API-Version"))
        self.assertIn("manageable-volumes", json.loads(b))
        # Below 3.8 the v3 path does not exist; the extension path does.
        s, _, b = call("GET", "/manageable_volumes?host=c1", headers={
            "OpenStack-API-Version": "volume 3.7"})
        self.assertEqual((s, json.loads(b)),
                         (404, {"itemNotFound": {"code": 404,
                                                 "message": "The resource could not be found."}}))
        s, _, _ = call("GET", "/os-volume-manage?host=c1")
        self.assertEqual(s, 200)
        s, h, b = call("GET", "/os-volume-manage?host=c1", headers={
            "OpenStack-API-Version": "volume 3.999"})
        self.assertEqual((s, h["OpenStack-API-Version"]), (406, "volume 3.999"))
        self.assertEqual(json.loads(b)["computeFault"]["message"],
                         "Version 3.999 is not supported by the API. Minimum is 3.0 and "
                         "maximum is 3.71.")
        s, h, _ = call("GET", "/os-volume-manage?host=c1", headers={
            "OpenStack-API-Version": "volume 99999999999999999999999.0"})
        self.assertEqual((s, h["OpenStack-API-Version"]),
                         (406, "volume 99999999999999999999999.0"))
        s, _, b = call("GET", "/os-volume-manage?host=c1", headers={
            "OpenStack-API-Version": "volume abc"})
        self.assertEqual((s, json.loads(b)["badRequest"]["message"]),
                         (400, "API Version String abc is of invalid format. Must be of format "
                               "MajorNum.MinorNum."))
        # The host/cluster rule at 3.17.
        s, _, b = call("GET", "/manageable_volumes?host=c1&cluster=c1", headers={
            "OpenStack-API-Version": "volume 3.17"})
        self.assertEqual((s, json.loads(b)["badRequest"]["message"]),
                         (400, "Invalid input received: One and only one of cluster and host "
                               "must be set."))
        s, _, b = call("GET", "/manageable_volumes", headers=v38)
        self.assertEqual(json.loads(b)["badRequest"]["message"],
                         "Invalid input received: Host field is missing.")
        # Schema errors name the field as Cinder's validator does, and change nothing.
        for body, msg in [
            ({}, "'volume' is a required property"),
            ({"volume": {"host": "c1"}},
             "Invalid input for field/attribute volume. Value: {'host': 'c1'}. 'ref' is a "
             "required property"),
            ({"volume": {"host": "c1", "ref": 5}},
             "Invalid input for field/attribute ref. Value: 5. 5 is not of type 'object', "
             "'string'"),
            ({"volume": {"host": "c1", "ref": {}, "cluster": "c1"}},
             "Invalid input for field/attribute volume. Value: {'host': 'c1', 'ref': {}, "
             "'cluster': 'c1'}. Additional properties are not allowed ('cluster' was "
             "unexpected)"),
            ({"volume": {"host": "bad host", "ref": {}}},
             "Invalid input for field/attribute host. Value: bad host. 'bad host' does not "
             "match '^[a-zA-Z0-9-._#@:/+\\\\[\\\\]]*$'"),
            ({"volume": {"host": "c1", "ref": {}, "metadata": {"k": 5}}},
             "Invalid input for field/attribute k. Value: 5. 5 is not of type 'string'"),
            ({"volume": {"host": "c1", "ref": {}}, "x": 1},
             "Additional properties are not allowed ('x' was unexpected)"),
            ({"volume": {"host": "c1", "ref": {}, "name": "n" * 256}},
             "Invalid input for field/attribute name. Value: " + "n" * 256 + ". '" + "n" * 256 +
             "' is too long"),
            ({"volume": {"host": "c1", "ref": {}, "bootable": "maybe"}},
             "Invalid input for field/attribute bootable. Value: maybe. 'maybe' is not one of "
             "[True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', "
             "'t', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', "
             "'no', 'n', 'f']"),
            # Hostile references name nothing outside the cluster's candidates.
            ({"volume": {"host": "c1", "ref": {"source-name": "../../../etc/passwd"}}},
             "Invalid input received: ref: no manageable volume ../../../etc/passwd on cluster "
             + self.cluster_id()),
        ]:
            s, _, b = call("POST", "/os-volume-manage", body)
            self.assertEqual((s, json.loads(b)), (400, {"badRequest": {"code": 400,
                                                                      "message": msg}}), body)
        s, _, b = call("POST", "/os-volume-manage", b"{not json")
        self.assertEqual(json.loads(b)["badRequest"]["message"], "Malformed request body")
        for body, msg in [
            ({"snapshot": {"volume_id": "nope", "ref": {}}},
             "Invalid input for field/attribute volume_id. Value: nope. 'nope' is not a 'uuid'"),
            ({"snapshot": {"ref": None}},
             "Invalid input for field/attribute snapshot. Value: {'ref': None}. 'volume_id' is a "
             "required property"),
            ({"snapshot": {"volume_id": "00000000-0000-4000-8000-000000000000", "ref": {}}},
             "Volume 00000000-0000-4000-8000-000000000000 could not be found."),
        ]:
            s, _, b = call("POST", "/os-snapshot-manage", body)
            fault = json.loads(b)
            self.assertEqual(list(fault.values())[0]["message"], msg, body)
        # A body over the service's limit is refused before it is read.
        host, port = self.server.endpoint.rsplit("/", 1)[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.putrequest("POST", "/v3/proj1/os-volume-manage")
        conn.putheader("X-Auth-Token", self.token)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(64 << 20))
        conn.endheaders()
        self.assertEqual(conn.getresponse().status, 413)
        conn.close()
        # Unknown volumes and actions.
        s, _, b = call("GET", "/volumes/00000000-0000-4000-8000-000000000000")
        self.assertEqual((s, json.loads(b)["itemNotFound"]["message"]),
                         (404, "Volume 00000000-0000-4000-8000-000000000000 could not be "
                               "found."))
        s, _, b = call("POST", "/volumes/00000000-0000-4000-8000-000000000000/action",
                       {"os-extend": {"new_size": 2}})
        self.assertEqual(json.loads(b)["badRequest"]["message"],
                         "There is no such action: os-extend. Verify the request body and "
                         "Content-Type header and try again.")
        s, _, b = call("POST", "/volumes/00000000-0000-4000-8000-000000000000/action",
                       {"os-unmanage": None})
        self.assertEqual(s, 404)
        # The version document clients read first, without a token (300, as Cinder answers).
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(self.server.endpoint + "/")
        self.assertEqual(e.exception.code, 300)
        doc = json.loads(e.exception.read())["versions"][0]
        self.assertEqual((doc["min_version"], doc["version"]), ("3.0", "3.71"))


if __name__ == "__main__":
    if not CINDER:
        print("the cinder command (Debian's python3-cinderclient) is not installed",
              file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)
