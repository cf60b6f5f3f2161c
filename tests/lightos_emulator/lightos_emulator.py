#!/usr/bin/env python3
"""A LightOS REST API v2 test double: the public contract of a Lightbits cluster's API as
../../../shared/reference/lightbits-dms.md (Part B) describes it, over TLS.

  lightos_emulator.py --port 0 --cert CERT --key KEY --state-dir DIR [--control-port 0]
                      [--cluster-name NAME] [--create-delay-ms 200] [--ready-file FILE]

- Every /api/v2 call needs `Authorization: Bearer <JWT>`: RS256 only (none and HS256 are
  refused), `kid` naming an imported credential ("<project>:<id>", e.g. system:dms-...), a
  signature that verifies with its public key, and an `exp` in the future. A token with an `aud`
  must name this cluster (its UUID or one of its https API endpoints). Otherwise 401. The calls
  report records each token's aud, iat and exp.
- Volumes and snapshots under /api/v2/projects/{project}/...: list (limit <= 1000, offsetUUID,
  name/Name filters), get, create (a volume from sourceSnapshotUUID is a thin clone), delete,
  PUT on volumes (size, which grows unless Force; compression; acl; labels, which replace all;
  newName). GET /api/v2/volumes and /api/v2/snapshots list every project's (or
  ?projectName=). Volumes carry connectedHosts. Objects move Creating -> Available and Deleting -> gone after
  --create-delay-ms. Each has an ETag that changes with it; a stale If-Match is 412. A delete
  or update of an object in Creating/Updating is 503, of one Deleting/Failed 400; a taken name
  is 409.
- Errors have the grpc-gateway v1 body {"error", "code", "message"}.
- A plain-HTTP control API on 127.0.0.1 (--control-port) imports credentials, adds servers,
  injects failures, stalls and malformed answers, stops and restarts the API listener, and
  reports the calls received; see README.md.

Writes {"port", "controlPort", "pid"} to --ready-file once both listeners are up.
"""
import argparse
import base64
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dataplane import DataPlane  # noqa: E402
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 412: 9, 429: 8, 500: 13, 501: 12, 503: 14}


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class State:
    def __init__(self, args, api_port):
        self.lock = threading.RLock()
        self.delay = args.create_delay_ms / 1000.0
        self.cluster = {
            "UUID": str(uuid.uuid4()),
            "clusterName": args.cluster_name,
            "subsystemNQN": "nqn.2016-01.com.lightbitslabs:uuid:" + str(uuid.uuid4()),
        }
        self.api_port = api_port
        self.credentials = {}  # "project:id" -> public key
        self.servers = [{"name": f"server{i}", "UUID": str(uuid.uuid4()), "state": "Active",
                         "nvmeEndpoint": f"127.0.0.{i + 1}:4420"} for i in range(3)]
        self.volumes = {}  # uuid -> volume
        self.snapshots = {}
        self.faults = []  # dicts: kind fail|stall|malformed, method, regex, count, ...
        self.calls = []
        self.reported_endpoints = None  # what clusterinfo says, when the control API set it
        self.data = DataPlane(self, args.state_dir)
        self.last_nsid = 0

    def new_nsid(self):
        self.last_nsid += 1
        return self.last_nsid

    def api_endpoints(self):
        if self.reported_endpoints is not None:
            return list(self.reported_endpoints)
        return [f"127.0.0.1:{self.api_port}"]

    # -- objects --------------------------------------------------------------------------------

    def settle_later(self, kind, key, to_state, before=None):
        def run():
            time.sleep(self.delay)
            if before is not None:
                before()  # data work (a clone's copy), outside the lock
            with self.lock:
                table = self.volumes if kind == "volume" else self.snapshots
                obj = table.get(key)
                if obj is None:
                    return
                if to_state is None:
                    del table[key]
                    self.data.remove(key)
                else:
                    obj["state"] = to_state
                    obj["ETag"] = secrets.token_hex(8)
                self.data.relayout()
        threading.Thread(target=run, daemon=True).start()


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*(b|kib|mib|gib|tib)?\s*", str(text).lower())
    if not m:
        raise ApiError(400, "size: cannot parse " + repr(text))
    mult = {None: 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
    n = int(m.group(1)) * mult[m.group(2)]
    if n == 0 or n % 4096:
        raise ApiError(400, "size: must be a positive multiple of 4 KiB")
    return n


NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,253}")


class Api:
    """The REST routes, as a function of (method, path, query, headers, body)."""

    def __init__(self, state):
        self.s = state

    def authenticate(self, headers):
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise ApiError(401, "missing bearer token")
        parts = auth[7:].split(".")
        if len(parts) != 3:
            raise ApiError(401, "malformed token")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except Exception:
            raise ApiError(401, "malformed token")
        if header.get("alg") != "RS256":
            raise ApiError(401, "algorithm not accepted")
        with self.s.lock:
            key = self.s.credentials.get(header.get("kid", ""))
        if key is None:
            raise ApiError(401, "unknown key id " + str(header.get("kid", ""))[:80])
        try:
            key.verify(sig, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(),
                       hashes.SHA256())
        except InvalidSignature:
            raise ApiError(401, "bad signature")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp < time.time():
            raise ApiError(401, "token expired")
        # A token that names its audience must name this cluster (its UUID, or one of its API
        # endpoints while the caller does not know the UUID yet).
        aud = claims.get("aud")
        if aud is not None:
            with self.s.lock:
                mine = {self.s.cluster["UUID"]} | {
                    e if "://" in e else "https://" + e for e in self.s.api_endpoints()} | {
                    f"https://127.0.0.1:{self.s.api_port}"}
            named = aud if isinstance(aud, list) else [aud]
            if not any(isinstance(a, str) and a in mine for a in named):
                raise ApiError(401, "token is for another audience")
        return claims

    def handle(self, method, path, query, headers, body, record=None):
        claims = self.authenticate(headers)
        if record is not None:
            record.update(audience=claims.get("aud"), iat=claims.get("iat"), exp=claims.get("exp"))
        s = self.s
        if method == "GET" and path == "/api/v2/clusterinfo":
            with s.lock:
                return 200, dict(s.cluster, apiEndpoints=s.api_endpoints(),
                                 discoveryEndpoints=[x["nvmeEndpoint"].rsplit(":", 1)[0] + ":8009"
                                                     for x in s.servers],
                                 nvmeEndpoints=[x["nvmeEndpoint"] for x in s.servers],
                                 currentMaxReplicas=3, supportedMaxReplicas=3,
                                 ETag=secrets.token_hex(4))
        if method == "GET" and path == "/api/v2/version":
            return 200, {"version": "v2.0", "lightosVersion": "emulator-1"}
        if method == "GET" and path == "/api/v2/nodes":
            with s.lock:
                return 200, {"nodes": [dict(x) for x in s.servers]}
        if method == "GET" and path in ("/api/v2/volumes", "/api/v2/snapshots"):
            # The binding without a project: every project's objects (a system-scope token's
            # view), or one project's with ?projectName=.
            kind = path.rsplit("/", 1)[1]
            project = (query.get("projectName") or [None])[0]
            with s.lock:
                return 200, self.list(s.volumes if kind == "volumes" else s.snapshots, kind,
                                      project, query)
        m = re.fullmatch(r"/api/v2/projects/([^/]+)/(volumes|snapshots|credentials)(?:/([^/]*))?",
                         path)
        if not m:
            raise ApiError(404, "no such route")
        project, kind, oid = unquote(m.group(1)), m.group(2), m.group(3)
        if kind == "credentials":
            return self.credentials(method, project, body)
        table = s.volumes if kind == "volumes" else s.snapshots
        with s.lock:
            if method == "GET" and not oid:
                return 200, self.list(table, kind, project, query)
            if method == "POST" and oid is None:
                return self.create(kind, project, body)
            if oid is None or oid == "":
                raise ApiError(405 if method != "GET" else 404, "no such route")
            obj = table.get(oid)
            if obj is None or obj["projectName"] != project:
                raise ApiError(404, f"{kind[:-1]} {oid} not found")
            if method == "GET":
                return 200, dict(obj)
            etag = headers.get("If-Match")
            if method in ("DELETE", "PUT"):
                if obj["state"] in ("Creating", "Updating"):
                    raise ApiError(503, f"{kind[:-1]} is {obj['state']}")
                if obj["state"] in ("Deleting", "Failed"):
                    raise ApiError(400, f"{kind[:-1]} is {obj['state']}")
                if etag and etag != obj["ETag"]:
                    raise ApiError(412, "ETag mismatch")
            if method == "DELETE":
                if kind == "volumes" and any(x["sourceVolumeUUID"] == oid
                                             for x in s.snapshots.values()):
                    pass  # LightOS keeps snapshots of deleted volumes
                obj["state"] = "Deleting"
                obj["ETag"] = secrets.token_hex(8)
                s.settle_later(kind[:-1], oid, None)
                return 200, {}
            if method == "PUT" and kind == "volumes":
                req = self.body_json(body)
                if "size" in req:
                    size = parse_size(req["size"])
                    if size < int(obj["size"]) and req.get("Force") is not True:
                        raise ApiError(400, "size: shrinking a volume needs Force")
                    obj["size"] = str(size)
                    s.data.grow(oid, size)
                if "compression" in req:
                    obj["compression"] = str(req["compression"]).lower()
                if "labels" in req:
                    obj["labels"] = self.labels(req)  # replaces them all
                if "acl" in req:
                    acl = req["acl"]
                    if not isinstance(acl, dict) or not isinstance(acl.get("values"), list):
                        raise ApiError(400, "acl: {values: [...]}")
                    obj["acl"] = acl
                new_name = req.get("newName")
                if new_name not in (None, "", obj["name"]):
                    if not isinstance(new_name, str) or not NAME_RE.fullmatch(new_name):
                        raise ApiError(400, "newName: 1-253 characters of [A-Za-z0-9._-]")
                    if any(o["name"] == new_name and o["projectName"] == project
                           for o in table.values()):
                        raise ApiError(409, f"a volume named {new_name} already exists")
                    obj["name"] = new_name
                obj["state"] = "Updating"
                obj["ETag"] = secrets.token_hex(8)
                s.settle_later("volume", oid, "Available")
                return 200, dict(obj)
            raise ApiError(405, "method not allowed")

    @staticmethod
    def body_json(body):
        try:
            v = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "body is not JSON")
        if not isinstance(v, dict):
            raise ApiError(400, "body is not an object")
        return v

    def list(self, table, kind, project, query):
        try:
            limit = int(query.get("limit", ["1000"])[0])
        except ValueError:
            raise ApiError(400, "limit: not a number")
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit: must be 1..1000")
        items = sorted((o for o in table.values() if project is None or o["projectName"] == project),
                       key=lambda o: (o["creationSeq"], o["UUID"]))
        name = (query.get("name") or query.get("Name") or [None])[0]
        if name is not None:
            items = [o for o in items if o["name"] == name]
        offset = query.get("offsetUUID", [None])[0]
        if offset:
            seqs = [i for i, o in enumerate(items) if o["UUID"] == offset]
            items = items[seqs[0] + 1:] if seqs else []
        return {kind: [dict(o) for o in items[:limit]]}

    @staticmethod
    def labels(req):
        labels = req.get("labels", [])
        if not isinstance(labels, list) or len(labels) > 16 or not all(
                isinstance(l, dict) and isinstance(l.get("key"), str) and l["key"] and
                isinstance(l.get("value", ""), str) for l in labels):
            raise ApiError(400, "labels: at most 16 {key, value} pairs")
        return [{"key": l["key"], "value": l.get("value", "")} for l in labels]

    def create(self, kind, project, body):
        s = self.s
        req = self.body_json(body)
        labels = self.labels(req)
        name = req.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ApiError(400, "name: 1-253 characters of [A-Za-z0-9._-]")
        table = s.volumes if kind == "volumes" else s.snapshots
        if any(o["name"] == name and o["projectName"] == project and o["state"] != "Deleting"
               for o in table.values()):
            raise ApiError(409, f"a {kind[:-1]} named {name} already exists")
        oid = str(uuid.uuid4())
        seq = time.monotonic_ns()
        if kind == "volumes":
            size = parse_size(req.get("size", ""))
            rc = req.get("replicaCount")
            if rc not in (1, 2, 3):
                raise ApiError(400, "replicaCount: must be 1, 2 or 3")
            acl = req.get("acl")
            if not isinstance(acl, dict) or not isinstance(acl.get("values"), list):
                raise ApiError(400, "acl: required, {values: [...]}")
            src = req.get("sourceSnapshotUUID", "")
            if src:
                snap = s.snapshots.get(src)
                if snap is None or snap["projectName"] != project:
                    raise ApiError(404, f"snapshot {src} not found")
                if snap["state"] != "Available":
                    raise ApiError(400, f"snapshot {src} is {snap['state']}")
                size = max(size, int(snap["size"]))
            obj = {"UUID": oid, "name": name, "projectName": project, "state": "Creating",
                   "protectionState": "FullyProtected", "replicaCount": rc, "size": str(size),
                   "sectorSize": int(req.get("sectorSize", 4096)),
                   "compression": str(req.get("compression", "false")).lower(),
                   "acl": acl, "sourceSnapshotUUID": src, "nsid": s.new_nsid(),
                   "connectedHosts": [],
                   # A clone with no labels inherits the snapshot's (LightOS).
                   "labels": labels or (list(s.snapshots[src].get("labels", [])) if src else []),
                   "creationTime": now_rfc3339(), "ETag": secrets.token_hex(8),
                   "creationSeq": seq}
        else:
            src = req.get("sourceVolumeUUID", "")
            vol = s.volumes.get(src)
            if vol is None or vol["projectName"] != project:
                raise ApiError(404, f"volume {src} not found")
            if vol["state"] != "Available":
                raise ApiError(400, f"volume {src} is {vol['state']}")
            desc = req.get("description", "")
            if len(str(desc).encode()) > 256:
                raise ApiError(400, "description: at most 256 bytes")
            obj = {"UUID": oid, "name": name, "projectName": project, "state": "Creating",
                   "sourceVolumeUUID": src, "sourceVolumeName": vol["name"],
                   "description": desc, "size": vol["size"],
                   "replicaCount": vol["replicaCount"], "sectorSize": vol["sectorSize"],
                   "compression": vol["compression"] == "true", "creationTime": now_rfc3339(),
                   "labels": labels,
                   "ETag": secrets.token_hex(8), "creationSeq": seq}
        table[oid] = obj
        before = None
        if kind == "volumes" and src:  # a thin clone starts with the snapshot's data
            size = int(obj["size"])
            before = lambda: s.data.copy(src, oid, size)  # noqa: E731
        elif kind == "volumes":
            s.data.create_empty(oid, obj["size"])
        else:  # a snapshot: the volume's data as it is now
            s.data.copy(src, oid, obj["size"])
        s.settle_later(kind[:-1], oid, "Available", before)
        return 200, dict(obj)

    def credentials(self, method, project, body):
        if method != "POST":
            raise ApiError(405, "only POST is emulated")
        req = self.body_json(body)
        cid, typ, payload = req.get("ID"), req.get("type"), req.get("payload")
        if not isinstance(cid, str) or not cid or typ != "rsa256pubkey" or not payload:
            raise ApiError(400, "ID, type rsa256pubkey and payload are required")
        key_id = f"{project}:{cid}"
        with self.s.lock:
            if key_id in self.s.credentials:
                raise ApiError(409, f"credential {cid} already exists")
            self.s.credentials[key_id] = load_key(base64.b64decode(payload))
        return 200, {"projectName": project, "ID": cid, "type": typ}


def load_key(pem):
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ApiError(400, "not an RSA public key")
    return key


class Servers:
    """The TLS API listener (stoppable and restartable on its port) and the control listener."""

    def __init__(self, args):
        self.args = args
        self.api_server = None
        self.api_thread = None
        self.connections = set()
        self.conn_lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", args.port))
        self.api_port = probe.getsockname()[1]
        probe.close()
        self.state = State(args, self.api_port)
        self.api = Api(self.state)
        # The NVMe/TCP target on each server's address, one port.
        port = self.state.data.serve(Handler, [x["nvmeEndpoint"].rsplit(":", 1)[0]
                                               for x in self.state.servers])
        for x in self.state.servers:
            x["nvmeEndpoint"] = x["nvmeEndpoint"].rsplit(":", 1)[0] + f":{port}"
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls.load_cert_chain(args.cert, args.key)

    def start_api(self):
        if self.api_server:
            return
        outer = self

        class ApiHandler(Handler):
            def dispatch(self):
                outer.serve_api(self)

            def setup(self):
                super().setup()
                with outer.conn_lock:
                    outer.connections.add(self.connection)

            def finish(self):
                with outer.conn_lock:
                    outer.connections.discard(self.connection)
                super().finish()

        class TlsServer(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                sock.settimeout(30)
                return outer.tls.wrap_socket(sock, server_side=True,
                                             do_handshake_on_connect=False), addr

        self.api_server = TlsServer(("127.0.0.1", self.api_port), ApiHandler)
        self.api_thread = threading.Thread(target=self.api_server.serve_forever, daemon=True)
        self.api_thread.start()

    def stop_api(self):
        if not self.api_server:
            return
        self.api_server.shutdown()
        self.api_server.server_close()
        with self.conn_lock:
            for c in list(self.connections):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.api_server = None

    # -- the API, with faults ---------------------------------------------------------------------

    def take_fault(self, method, path):
        with self.state.lock:
            for f in self.state.faults:
                if f["count"] > 0 and f.get("method", method) in (method, None, "") and \
                        re.search(f["pathRegex"], path):
                    f["count"] -= 1
                    return dict(f)
        return None

    def serve_api(self, h):
        url = urlsplit(h.path)
        path, query = url.path, parse_qs(url.query)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        fault = self.take_fault(h.command, path)
        record = {"method": h.command, "path": h.path, "ifMatch": h.headers.get("If-Match"),
                  "authorization": bool(h.headers.get("Authorization"))}
        status = 0
        try:
            if fault and fault["kind"] == "stall":
                time.sleep(float(fault.get("seconds", 5)))
                fault = None
            if fault and fault["kind"] == "fail":
                status = int(fault["status"])
                raw = fault.get("body")
                if raw is None:
                    raw = json.dumps({"error": "injected", "code": GRPC.get(status, 2),
                                      "message": f"injected {status}"})
                h.send(status, raw.encode(), fault.get("headers") or {})
                return
            if fault and fault["kind"] == "malformed":
                status = 200
                self.malformed(h, fault["malformedKind"])
                return
            try:
                status, obj = self.api.handle(h.command, path, query, h.headers, body, record)
                h.send(status, json.dumps(obj).encode(),
                       {"ETag": obj["ETag"]} if isinstance(obj, dict) and "ETag" in obj else {})
            except ApiError as e:
                status = e.status
                h.send(status, json.dumps({"error": e.message, "code": GRPC.get(status, 2),
                                           "message": e.message}).encode())
        finally:
            record["status"] = status
            with self.state.lock:
                self.state.calls.append(record)
                del self.state.calls[:-5000]

    @staticmethod
    def malformed(h, kind):
        if kind == "truncated-json":
            h.send(200, b'{"UUID": "7d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e", "clusterName": "x')
        elif kind == "wrong-types":
            h.send(200, json.dumps({"UUID": 12, "clusterName": [], "subsystemNQN": {},
                                    "apiEndpoints": "x", "size": {"a": 1}, "state": 7,
                                    "nodes": {}, "volumes": 3, "snapshots": "y"}).encode())
        elif kind == "not-json":
            h.send(200, b"<html><body>502 Bad Gateway</body></html>",
                   {"Content-Type": "text/html"})
        elif kind == "missing-fields":
            h.send(200, b"{}")
        elif kind == "oversized":
            size = 64 << 20
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(size))
            h.end_headers()
            chunk = b" " * (1 << 20)
            try:
                for _ in range(size >> 20):
                    h.wfile.write(chunk)
            except OSError:
                pass
        else:
            h.send(200, b"{}")

    # -- control ----------------------------------------------------------------------------------

    def serve_control(self, h):
        s = self.state
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        try:
            req = json.loads(h.rfile.read(length) or b"{}") if length else {}
        except ValueError:
            return h.send(400, b'{"message":"not JSON"}')
        m, p = h.command, url.path
        with s.lock:
            if m == "POST" and p in ("/control/fail", "/control/stall", "/control/malformed"):
                kind = p.rsplit("/", 1)[1]
                f = {"kind": kind, "method": req.get("method"),
                     "pathRegex": req.get("pathRegex", ".*"), "count": int(req.get("count", 1))}
                if kind == "fail":
                    f.update(status=int(req["status"]), body=req.get("body"),
                             headers=req.get("headers"))
                if kind == "stall":
                    f["seconds"] = float(req.get("seconds", 5))
                if kind == "malformed":
                    f["malformedKind"] = req.get("kind", "missing-fields")
                s.faults.append(f)
                return h.send(200, b"{}")
            if m == "POST" and p == "/control/api-endpoints":
                eps = req.get("endpoints")
                if not isinstance(eps, list) or not all(isinstance(e, str) for e in eps):
                    return h.send(400, b'{"message":"endpoints: a list of strings"}')
                s.reported_endpoints = eps
                return h.send(200, b"{}")
            if m == "POST" and p == "/control/reset":
                s.faults.clear()
                s.data.reset()
                return h.send(200, b"{}")
            if m == "POST" and p == "/control/credentials":
                try:
                    s.credentials[req["id"]] = load_key(req["pem"].encode())
                except (KeyError, ValueError, ApiError) as e:
                    return h.send(400, json.dumps({"message": str(e)}).encode())
                return h.send(200, b"{}")
            if m == "DELETE" and p.startswith("/control/credentials/"):
                s.credentials.pop(unquote(p[len("/control/credentials/"):]), None)
                return h.send(200, b"{}")
            if m == "POST" and p == "/control/servers":
                n = len(s.servers)
                s.servers.append({"name": req.get("name", f"server{n}"),
                                  "UUID": str(uuid.uuid4()), "state": "Active",
                                  "nvmeEndpoint": f"127.0.0.{n + 1}:{s.data.port}"})
                return h.send(200, b"{}")
            if m == "DELETE" and p.startswith("/control/servers/"):
                name = unquote(p[len("/control/servers/"):])
                s.servers = [x for x in s.servers if x["name"] != name]
                return h.send(200, b"{}")
            if m == "POST" and p == "/control/volumes":
                # A volume made by another tool, as it stands: any project, name, size,
                # labels, state and connected hosts.
                oid = req.get("UUID") or str(uuid.uuid4())
                s.volumes[oid] = {
                    "UUID": oid, "name": req.get("name", "vol-" + oid[:8]),
                    "projectName": req.get("projectName", "default"),
                    "state": req.get("state", "Available"), "protectionState": "FullyProtected",
                    "replicaCount": int(req.get("replicaCount", 3)),
                    "size": str(parse_size(req.get("size", "1gib"))),
                    "sectorSize": int(req.get("sectorSize", 4096)), "compression": "false",
                    "acl": {"values": req.get("acl", ["ALLOW_NONE"])}, "sourceSnapshotUUID": "",
                    "nsid": s.new_nsid(), "connectedHosts": req.get("connectedHosts", []),
                    "labels": req.get("labels", []), "creationTime": now_rfc3339(),
                    "ETag": secrets.token_hex(8), "creationSeq": time.monotonic_ns()}
                s.data.create_empty(oid, s.volumes[oid]["size"])
                s.data.relayout()
                return h.send(200, json.dumps(s.volumes[oid]).encode())
            if m == "POST" and p == "/control/snapshots":
                # A snapshot another tool took of a volume.
                vol = s.volumes.get(req.get("sourceVolumeUUID", ""))
                if vol is None:
                    return h.send(404, b'{"message":"no such volume"}')
                oid = str(uuid.uuid4())
                s.snapshots[oid] = {
                    "UUID": oid, "name": req.get("name", "snap-" + oid[:8]),
                    "projectName": vol["projectName"], "state": req.get("state", "Available"),
                    "sourceVolumeUUID": vol["UUID"], "sourceVolumeName": vol["name"],
                    "description": "", "size": vol["size"], "replicaCount": vol["replicaCount"],
                    "sectorSize": vol["sectorSize"], "compression": False,
                    "creationTime": now_rfc3339(), "labels": req.get("labels", []),
                    "ETag": secrets.token_hex(8), "creationSeq": time.monotonic_ns()}
                s.data.copy(vol["UUID"], oid, vol["size"])
                return h.send(200, json.dumps(s.snapshots[oid]).encode())
            if m == "PATCH" and p.startswith("/control/volumes/"):
                # Another tool at work on a volume: its state, hosts or labels change (and
                # with them its ETag).
                obj = s.volumes.get(unquote(p[len("/control/volumes/"):]))
                if obj is None:
                    return h.send(404, b'{"message":"no such volume"}')
                for k in ("state", "connectedHosts", "labels", "name"):
                    if k in req:
                        obj[k] = req[k]
                if "size" in req:
                    obj["size"] = str(parse_size(req["size"]))
                    s.data.grow(obj["UUID"], obj["size"])
                obj["ETag"] = secrets.token_hex(8)
                s.data.relayout()
                return h.send(200, json.dumps(obj).encode())
            if m == "GET" and p == "/control/calls":
                return h.send(200, json.dumps({"calls": s.calls}).encode())
            if m == "GET" and p == "/control/state":
                return h.send(200, json.dumps({
                    "cluster": s.cluster, "servers": s.servers,
                    "credentials": sorted(s.credentials), "volumes": list(s.volumes.values()),
                    "snapshots": list(s.snapshots.values()), "faults": s.faults,
                    "data": s.data.describe()}).encode())
            answer = s.data.control(m, p, req)
            if answer is not None:
                return h.send(answer[0], json.dumps(answer[1]).encode())
        if m == "POST" and p == "/control/stop-api":
            self.stop_api()
            return h.send(200, b"{}")
        if m == "POST" and p == "/control/start-api":
            self.start_api()
            return h.send(200, b"{}")
        return h.send(404, b'{"message":"no such control route"}')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, headers=None):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def dispatch(self):
        raise NotImplementedError

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--cluster-name", default="emulated-lightos")
    ap.add_argument("--create-delay-ms", type=int, default=200)
    ap.add_argument("--ready-file")
    args = ap.parse_args()
    os.makedirs(args.state_dir, exist_ok=True)
    servers = Servers(args)
    servers.start_api()

    class ControlHandler(Handler):
        def dispatch(self):
            servers.serve_control(self)

    control = ThreadingHTTPServer(("127.0.0.1", args.control_port), ControlHandler)
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    ready = {"port": servers.api_port, "controlPort": control.server_address[1],
             "pid": os.getpid()}
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(ready, f)
        os.replace(tmp, args.ready_file)
    print(json.dumps(ready), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
