"""The emulated cluster's data plane: volume and snapshot data, and its NVMe/TCP target.

- Every volume and snapshot has its data in <state-dir>/data/<UUID>.img, a sparse file of its
  size. A new volume reads zeros; a snapshot is a copy of its volume's data when taken; a thin
  clone (a volume from sourceSnapshotUUID) starts as a copy of the snapshot's, made while it is
  Creating (LightOS shares blocks instead; the copy is this model's cost, not the contract's).
- The NVMe/TCP target listens on the servers' nvmeEndpoint addresses (127.0.0.1, .2, .3 on one
  port). `POST /fabric/connect` (what the `nvme` stand-in sends for `nvme connect`) admits a
  host to the cluster's subsystem NQN and has the kernel model (nvme_kernel.py) lay out a
  controller for it; the namespaces it sees are the volumes whose ACL names its host NQN (or
  ALLOW_ANY) while Available or Updating, each a head whose `nsid` is the volume's and whose
  device node is the volume's data. Every change of a volume (created, deleted, ACL or size
  updated) lays the namespaces out again, as a target's AEN and the host's rescan do, and
  volumes list the hosts that see them in connectedHosts.
- Faults (control API): refuse the next connects; hide volumes by name prefix (their namespace
  never appears); drop the path to volumes by name prefix: the controllers showing them go and
  their data reads short (an I/O error to whoever has the device open) until the host connects
  again, when the data is back (unless the drop is permanent).
"""

import contextlib
import json
import os
import shutil
import subprocess
import threading
from http.server import ThreadingHTTPServer

from nvme_kernel import Kernel


class DataPlane:
    def __init__(self, state, state_dir):
        self.s = state  # the emulator's State; its lock guards everything here too
        self.dir = os.path.join(state_dir, "data")
        os.makedirs(self.dir, exist_ok=True)
        self.connections = {}  # (sysfs, controller) -> {hostnqn, sysfs, dev, traddr}
        self.refuse = 0
        self.hidden = []       # name prefixes
        self.dropped = {}      # volume UUID -> {"saved": path or None, "restore": bool}
        self.port = None

    def path(self, oid):
        return os.path.join(self.dir, oid + ".img")

    # -- data -------------------------------------------------------------------------------------

    def create_empty(self, oid, size):
        with open(self.path(oid), "wb") as f:
            f.truncate(int(size))

    def copy(self, src_oid, dst_oid, size):
        src, dst = self.path(src_oid), self.path(dst_oid)
        tmp = dst + ".tmp"
        if os.path.exists(src):
            subprocess.run(["cp", "--sparse=always", src, tmp], check=True)
        else:
            open(tmp, "wb").close()
        with open(tmp, "r+b") as f:
            if os.path.getsize(tmp) < int(size):
                f.truncate(int(size))
        os.replace(tmp, dst)

    def grow(self, oid, size):
        p = self.path(oid)
        if os.path.exists(p) and os.path.getsize(p) < int(size):
            with open(p, "r+b") as f:
                f.truncate(int(size))

    def remove(self, oid):
        for p in (self.path(oid), self.path(oid) + ".saved"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)

    # -- the target -------------------------------------------------------------------------------

    def visible(self, vol, hostnqn):
        acl = (vol.get("acl") or {}).get("values") or []
        return vol["state"] in ("Available", "Updating") and \
            (hostnqn in acl or "ALLOW_ANY" in acl) and \
            not any(vol["name"].startswith(p) for p in self.hidden) and \
            vol["UUID"] not in self.dropped and os.path.exists(self.path(vol["UUID"]))

    def relayout(self):
        """Called with the state lock held, after any change of volumes or connections."""
        hosts = {c["hostnqn"] for c in self.connections.values()}
        seen = {}
        done = set()
        for (sysfs, _), c in self.connections.items():
            if (sysfs, c["hostnqn"]) in done:
                continue
            done.add((sysfs, c["hostnqn"]))
            ns = []
            for v in self.s.volumes.values():
                if self.visible(v, c["hostnqn"]):
                    ns.append({"nsid": v["nsid"], "path": self.path(v["UUID"]),
                               "size": int(v["size"]), "blockSize": v.get("sectorSize", 4096),
                               "uuid": v["UUID"]})
                    seen.setdefault(v["UUID"], set()).add(c["hostnqn"])
            k = Kernel(sysfs, c["dev"])
            with k.locked():
                k.set_namespaces(self.s.cluster["subsystemNQN"], ns)
        for v in self.s.volumes.values():
            others = [h for h in v.get("connectedHosts", []) if h not in hosts]
            v["connectedHosts"] = others + sorted(seen.get(v["UUID"], ()))

    def connect(self, req):
        with self.s.lock:
            if req.get("subsysnqn") != self.s.cluster["subsystemNQN"]:
                return 404, {"message": "no such subsystem"}
            if self.refuse > 0:
                self.refuse -= 1
                return 403, {"message": "connection refused by the target"}
            for oid, d in list(self.dropped.items()):
                if d["restore"]:
                    if d["saved"] and os.path.exists(d["saved"]):
                        os.replace(d["saved"], self.path(oid))
                    del self.dropped[oid]
            k = Kernel(req["sysfsRoot"], req["devRoot"])
            with k.locked():
                ctrl = k.add_controller(req["subsysnqn"], req["hostnqn"], req["traddr"],
                                        req["trsvcid"])
            self.connections[(req["sysfsRoot"], ctrl)] = {
                "hostnqn": req["hostnqn"], "dev": req["devRoot"], "traddr": req["traddr"],
                "controller": ctrl, "sysfs": req["sysfsRoot"]}
            self.relayout()
            return 200, {"device": ctrl}

    def disconnect(self, req):
        with self.s.lock:
            self.connections.pop((req.get("sysfsRoot"), req.get("controller")), None)
            self.relayout()
            return 200, {}

    def drop_path(self, prefix, restore):
        """Called with the state lock held."""
        hit = [v for v in self.s.volumes.values() if v["name"].startswith(prefix)]
        for v in hit:
            oid = v["UUID"]
            saved = None
            if os.path.exists(self.path(oid)):
                saved = self.path(oid) + ".saved"
                subprocess.run(["cp", "--sparse=always", self.path(oid), saved], check=True)
                with open(self.path(oid), "r+b") as f:  # open descriptors now read short
                    f.truncate(0)
            self.dropped[oid] = {"saved": saved if restore else None, "restore": restore}
        if hit:  # the controllers go (ctrl-loss-tmo passed): a host must connect again
            for key, c in list(self.connections.items()):
                k = Kernel(c["sysfs"], c["dev"])
                with k.locked():
                    k.set_state(c["controller"], "connecting")
                    k.remove_controller(c["controller"])
                del self.connections[key]
            self.relayout()
        return len(hit)

    def serve(self, handler_base, ports_from):
        """Starts the target on 127.0.0.1..3 at one port; returns the port."""
        plane = self

        class FabricHandler(handler_base):
            def dispatch(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    req = json.loads(self.rfile.read(length) or b"{}") if length else {}
                except ValueError:
                    return self.send(400, b'{"message":"not JSON"}')
                if self.command == "POST" and self.path == "/fabric/connect":
                    status, body = plane.connect(req)
                elif self.command == "POST" and self.path == "/fabric/disconnect":
                    status, body = plane.disconnect(req)
                else:
                    status, body = 404, {"message": "no such fabric route"}
                self.send(status, json.dumps(body).encode())

        first = ThreadingHTTPServer(("127.0.0.1", 0), FabricHandler)
        self.port = first.server_address[1]
        servers = [first]
        for addr in ports_from[1:]:
            try:
                servers.append(ThreadingHTTPServer((addr, self.port), FabricHandler))
            except OSError:
                pass  # that path stays unreachable, as a down server's would
        for srv in servers:
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        return self.port

    def control(self, method, path, req):
        """The data plane's control routes; None when not one of them. State lock held."""
        if method == "POST" and path == "/control/nvme/refuse":
            self.refuse = int(req.get("count", 1))
            return 200, {}
        if method == "POST" and path == "/control/nvme/hide":
            self.hidden.append(str(req.get("namePrefix", "")))
            self.relayout()
            return 200, {}
        if method == "POST" and path == "/control/nvme/drop-path":
            n = self.drop_path(str(req.get("namePrefix", "")), bool(req.get("restore", True)))
            return 200, {"dropped": n}
        return None

    def reset(self):
        self.refuse = 0
        self.hidden.clear()
        self.relayout()

    def describe(self):
        return {"dataDir": self.dir, "fabricPort": self.port,
                "connections": [dict(c) for c in self.connections.values()],
                "hidden": list(self.hidden), "dropped": sorted(self.dropped)}
