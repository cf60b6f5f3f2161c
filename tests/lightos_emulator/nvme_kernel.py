"""What the Linux kernel shows of NVMe/TCP controllers in sysfs and /dev, as a model.

Laid out under a test's roots exactly as Linux 6.1 does with native multipath (the default):

  <sysfs>/devices/virtual/nvme-fabrics/ctl/nvmeC/        a controller: state, transport,
                                                          address, subsysnqn, hostnqn, ...
  <sysfs>/class/nvme/nvmeC -> ../../devices/virtual/nvme-fabrics/ctl/nvmeC
  <sysfs>/devices/virtual/nvme-subsystem/nvme-subsysS/   subsysnqn, model, serial, ...,
        nvmeC -> ../../nvme-fabrics/ctl/nvmeC             a link per controller,
        nvmeSnH/                                          a namespace head: nsid, size (512-byte
                                                          sectors), queue/logical_block_size ...
  <sysfs>/class/nvme-subsystem/nvme-subsysS -> ../../devices/virtual/nvme-subsystem/nvme-subsysS
  <sysfs>/block/nvmeSnH -> ../devices/virtual/nvme-subsystem/nvme-subsysS/nvmeSnH
  <dev>/nvmeSnH                                           the device node: here the volume's
                                                          data file itself (a hard link)

Controllers and subsystems share one instance numbering (the first controller's instance names
a new subsystem); a namespace head's instance H is the lowest free from 1 in its subsystem and
is not the NSID. Several processes (emulators of several clusters, the nvme stand-in) change
one tree: every change holds an flock on <sysfs>/.nvme-model.lock.
"""

import contextlib
import fcntl
import os
import re
import shutil

CTRL_RE = re.compile(r"nvme(\d+)$")
HEAD_RE = re.compile(r"nvme(\d+)n(\d+)$")


def read_attr(path):
    try:
        with open(path) as f:
            return f.read().rstrip("\n ")
    except OSError:
        return ""


def write_attr(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(str(value) + "\n")


class Kernel:
    def __init__(self, sysfs, dev):
        self.sysfs = sysfs
        self.dev = dev

    # -- paths ------------------------------------------------------------------------------------

    def ctl_dir(self, c):
        return os.path.join(self.sysfs, "devices/virtual/nvme-fabrics/ctl", c)

    def subsys_dir(self, s):
        return os.path.join(self.sysfs, "devices/virtual/nvme-subsystem", s)

    @contextlib.contextmanager
    def locked(self):
        os.makedirs(self.sysfs, exist_ok=True)
        with open(os.path.join(self.sysfs, ".nvme-model.lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- reading ----------------------------------------------------------------------------------

    def controllers(self):
        """{name: {state, transport, address, subsysnqn, hostnqn}}"""
        out = {}
        d = os.path.join(self.sysfs, "class/nvme")
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if not CTRL_RE.match(name):
                continue
            p = os.path.join(d, name)
            out[name] = {k: read_attr(os.path.join(p, k))
                         for k in ("state", "transport", "address", "subsysnqn", "hostnqn")}
        return out

    def subsystems(self):
        """{name: subsysnqn}"""
        out = {}
        d = os.path.join(self.sysfs, "class/nvme-subsystem")
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            out[name] = read_attr(os.path.join(d, name, "subsysnqn"))
        return out

    def subsystem_of(self, nqn):
        for name, n in self.subsystems().items():
            if n == nqn:
                return name
        return None

    def used_instances(self):
        used = set()
        for d in ("devices/virtual/nvme-fabrics/ctl", "devices/virtual/nvme-subsystem"):
            p = os.path.join(self.sysfs, d)
            for name in os.listdir(p) if os.path.isdir(p) else []:
                m = re.match(r"nvme(?:-subsys)?(\d+)$", name)
                if m:
                    used.add(int(m.group(1)))
        return used

    # -- changing ---------------------------------------------------------------------------------

    def add_controller(self, subsysnqn, hostnqn, traddr, trsvcid, model="LightOS"):
        """A new live controller (and its subsystem when it is the first); its name."""
        used = self.used_instances()
        inst = next(i for i in range(10000) if i not in used)
        c = f"nvme{inst}"
        cd = self.ctl_dir(c)
        os.makedirs(cd)
        for k, v in {"state": "live", "transport": "tcp",
                     "address": f"traddr={traddr},trsvcid={trsvcid},src_addr=127.0.0.1",
                     "subsysnqn": subsysnqn, "hostnqn": hostnqn, "model": model,
                     "serial": "emulated", "firmware_rev": "1.0", "cntlid": inst + 1,
                     "ctrl_loss_tmo": 600, "reconnect_delay": 10, "fast_io_fail_tmo": "off",
                     "queue_count": 3, "sqsize": 127, "numa_node": -1}.items():
            write_attr(os.path.join(cd, k), v)
        os.makedirs(os.path.join(self.sysfs, "class/nvme"), exist_ok=True)
        os.symlink(os.path.relpath(cd, os.path.join(self.sysfs, "class/nvme")),
                   os.path.join(self.sysfs, "class/nvme", c))
        s = self.subsystem_of(subsysnqn)
        if s is None:
            s = f"nvme-subsys{inst}"
            sd = self.subsys_dir(s)
            os.makedirs(sd)
            for k, v in {"subsysnqn": subsysnqn, "model": model, "serial": "emulated",
                         "firmware_rev": "1.0", "subsystype": "nvm", "iopolicy": "numa"}.items():
                write_attr(os.path.join(sd, k), v)
            os.makedirs(os.path.join(self.sysfs, "class/nvme-subsystem"), exist_ok=True)
            os.symlink(os.path.relpath(sd, os.path.join(self.sysfs, "class/nvme-subsystem")),
                       os.path.join(self.sysfs, "class/nvme-subsystem", s))
        sd = self.subsys_dir(s)
        os.symlink(os.path.relpath(cd, sd), os.path.join(sd, c))
        return c

    def set_state(self, c, state):
        cd = self.ctl_dir(c)
        if os.path.isdir(cd):
            write_attr(os.path.join(cd, "state"), state)
            if state != "live":  # src_addr only while live
                addr = read_attr(os.path.join(cd, "address"))
                write_attr(os.path.join(cd, "address"), re.sub(r",src_addr=[^,]*", "", addr))

    def remove_controller(self, c):
        cd = self.ctl_dir(c)
        nqn = read_attr(os.path.join(cd, "subsysnqn"))
        shutil.rmtree(cd, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.sysfs, "class/nvme", c))
        s = self.subsystem_of(nqn)
        if s is None:
            return
        sd = self.subsys_dir(s)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(sd, c))
        if not any(CTRL_RE.match(n) for n in os.listdir(sd)):  # the last path: it all goes
            self.set_namespaces(nqn, [])
            shutil.rmtree(sd, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.sysfs, "class/nvme-subsystem", s))

    def heads(self, s):
        """{head name: nsid} of subsystem s"""
        sd = self.subsys_dir(s)
        return {n: read_attr(os.path.join(sd, n, "nsid"))
                for n in (os.listdir(sd) if os.path.isdir(sd) else []) if HEAD_RE.match(n)}

    def set_namespaces(self, nqn, namespaces):
        """Makes the namespaces of subsystem `nqn` these: [{nsid, path, size, blockSize}]."""
        s = self.subsystem_of(nqn)
        if s is None:
            return
        sd = self.subsys_dir(s)
        sinst = int(s[len("nvme-subsys"):])
        want = {str(n["nsid"]): n for n in namespaces}
        for head, nsid in self.heads(s).items():
            node = os.path.join(self.dev, head)
            n = want.get(nsid)
            if n is not None and os.path.exists(node) and os.path.exists(n["path"]) and \
                    os.stat(node).st_ino == os.stat(n["path"]).st_ino:
                write_attr(os.path.join(sd, head, "size"), int(n["size"]) // 512)
                del want[nsid]
                continue
            shutil.rmtree(os.path.join(sd, head), ignore_errors=True)
            for p in (node, os.path.join(self.sysfs, "block", head)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
        for nsid, n in sorted(want.items(), key=lambda kv: int(kv[0])):
            taken = {int(HEAD_RE.match(h).group(2)) for h in self.heads(s)}
            h = next(i for i in range(1, 100000) if i not in taken)
            head = f"nvme{sinst}n{h}"
            hd = os.path.join(sd, head)
            for k, v in {"nsid": nsid, "size": int(n["size"]) // 512, "ro": 0, "removable": 0,
                         "wwid": "uuid." + n.get("uuid", "00000000-0000-0000-0000-000000000000"),
                         "uuid": n.get("uuid", ""), "dev": f"259:{sinst * 64 + h}",
                         "queue/logical_block_size": n.get("blockSize", 4096),
                         "queue/physical_block_size": n.get("blockSize", 4096)}.items():
                write_attr(os.path.join(hd, k), v)
            os.makedirs(os.path.join(self.sysfs, "block"), exist_ok=True)
            os.symlink(os.path.relpath(hd, os.path.join(self.sysfs, "block")),
                       os.path.join(self.sysfs, "block", head))
            os.makedirs(self.dev, exist_ok=True)
            node = os.path.join(self.dev, head)
            try:
                os.link(n["path"], node)
            except OSError:  # another file system: a symbolic link stands in
                os.symlink(n["path"], node)
