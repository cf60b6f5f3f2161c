#!/usr/bin/env python3
"""Writes the seed corpora: one file per seed, named after what it holds.

fuzz_http inputs: one mode byte (0 = as sent, 1 = admin token added, 2 = viewer token added)
followed by a raw HTTP/1.1 request. fuzz_bodies inputs: one byte choosing the route followed by
the body.
"""
import os
import sys

CID = "5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e"
SID = "0b6f4c7e-2a0e-4d4e-8f55-7c1a2b3c4d5e"


def req(method, target, body=b"", headers=()):
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += list(headers)
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


HTTP = {
    "healthz": (0, req("GET", "/healthz")),
    "readyz": (0, req("GET", "/readyz")),
    "metrics": (0, req("GET", "/metrics")),
    "login_json": (0, req("POST", "/api/v1/login", b'{"username":"admin","password":"x"}')),
    "login_basic": (0, req("POST", "/api/v1/login", headers=["Authorization: Basic YWRtaW46eA=="])),
    "logout": (1, req("POST", "/api/v1/logout")),
    "credentials": (1, req("GET", "/api/v1/service-credentials")),
    "clusters": (1, req("GET", "/api/v1/clusters")),
    "clusters_viewer": (2, req("GET", "/api/v1/clusters")),
    "attach": (1, req("POST", "/api/v1/clusters", b'{"apiEndpoint":"file:///tmp/c1","name":"c1"}')),
    "refresh": (1, req("POST", "/api/v1/clusters/refresh", b"{}")),
    "cluster": (1, req("GET", f"/api/v1/clusters/{CID}")),
    "detach": (1, req("DELETE", f"/api/v1/clusters/{CID}")),
    "volumes": (1, req("GET", f"/api/v1/clusters/{CID}/projects/default/volumes?pageSize=5")),
    "volume_create": (1, req("POST", f"/api/v1/clusters/{CID}/projects/default/volumes",
                             b'{"name":"v1","size":"1073741824"}')),
    "volume": (1, req("GET", f"/api/v1/clusters/{CID}/projects/default/volumes/{SID}")),
    "volume_delete": (1, req("DELETE", f"/api/v1/clusters/{CID}/projects/default/volumes/{SID}")),
    "snapshots": (1, req("GET", f"/api/v1/clusters/{CID}/projects/p/snapshots?nextPageToken=x")),
    "snapshot_create": (1, req("POST", f"/api/v1/clusters/{CID}/projects/default/snapshots",
                               f'{{"name":"s1","sourceVolumeId":"{SID}"}}'.encode())),
    "clone": (1, req("POST", "/api/v1/volumes/thickclone",
                     f'{{"src":{{"clusterId":"{CID}","projectName":"default","snapId":"{SID}"}},'
                     f'"dst":{{"clusterId":"{CID}","projectName":"default","name":"c"}},'
                     f'"verifyClone":true}}'.encode())),
    "workflows": (1, req("GET", "/api/v1/workflows?pageSize=2&state=RUNNING&type=THICK_CLONE_VOLUME")),
    "workflow": (1, req("GET", f"/api/v1/workflows/{SID}")),
    "cancel": (1, req("POST", f"/api/v1/workflows/{SID}/cancel")),
    "chunked": (1, b"POST /api/v1/clusters/refresh HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    "groups": (1, req("GET", "/api/v1/consistency-groups?pageSize=2")),
    "group": (1, req("GET", f"/api/v1/consistency-groups/{SID}")),
    "group_delete": (1, req("DELETE", f"/api/v1/consistency-groups/{SID}")),
    "cg_snapshots": (1, req("GET", f"/api/v1/cg-snapshots?consistencyGroupId={SID}")),
    "cg_members": (1, req("GET", f"/api/v1/cg-snapshots/{SID}/members")),
    "copy_sets": (1, req("GET", f"/api/v1/consistency-groups/{SID}/full-copies?pageSize=2")),
    "bad_token": (0, req("GET", "/api/v1/clusters", headers=["Authorization: Bearer a.b.c"])),
    "repair": (1, req("POST", f"/api/v1/clusters/{CID}/repair", body=b"{}")),
}

BODIES = {
    "login": (0, b'{"username":"admin","password":"secret"}'),
    "attach": (1, b'{"apiEndpoint":"file:///tmp/dmscore-fuzz/c1","name":"c1"}'),
    "attach_lightbits": (1, b'{"apiEndpoint":"https://10.0.0.1:443"}'),
    "refresh": (2, f'{{"clusterId":"{CID}"}}'.encode()),
    "volume": (3, b'{"name":"v1","size":"4096","replicaCount":1,"sectorSize":4096,"compression":false}'),
    "volume_thin": (3, f'{{"name":"v2","size":4096,"sourceSnapshotId":"{SID}"}}'.encode()),
    "snapshot": (4, f'{{"name":"s1","sourceVolumeId":"{SID}","description":"d"}}'.encode()),
    "clone_volume": (5, f'{{"src":{{"clusterId":"{CID}","projectName":"default","snapId":"{SID}"}},'
                        f'"dst":{{"clusterId":"{CID}","projectName":"default","name":"c1",'
                        f'"size":"8192","replica":1,"compression":true}},"verifyClone":false}}'.encode()),
    "clone_snapshot": (6, f'{{"src":{{"clusterId":"{CID}","projectName":"default","snapId":"{SID}"}},'
                          f'"dst":{{"clusterId":"{CID}","projectName":"default","name":"c1"}}}}'.encode()),
    "cancel": (7, b"{}"),
    "nested": (5, b'{"src":' * 64 + b"{}" + b"}" * 64),
    "group": (8, f'{{"name":"db","description":"d","clusterId":"{CID}","projectName":"p1",'
                 f'"volumeIds":["{SID}"]}}'.encode()),
    "group_update": (9, f'{{"name":"db2","addVolumeIds":["{SID}"],"removeVolumeIds":[]}}'.encode()),
    "group_reset": (10, b'{"resetStatus":{"status":"error"}}'),
    "group_force": (10, b'{"forceDelete":{}}'),
    "cg_snapshot": (11, f'{{"consistencyGroupId":"{CID}","name":"n","description":"d"}}'.encode()),
    "full_copies": (12, f'{{"name":"fc","count":3,"partial":true,"volumeIds":["{SID}"],'
                        f'"createInactive":true,"clusterId":"{CID}","projectName":"p2"}}'.encode()),
    "copy_set_resync": (13, b'{"resynchronize":{"copies":[1,2]}}'),
    "copy_set_restore": (13, b'{"restore":{"confirm":true,"copies":[1]}}'),
    "group_thickclone": (14, f'{{"src":{{"cgSnapshotId":"{SID}"}},"dst":{{"name":"g2",'
                             f'"clusterId":"{CID}","projectName":"p2"}},"verifyClone":true}}'.encode()),
    "repair": (15, b"{}"),
}

# fuzz_sources inputs: one byte (a multiple of 16 goes through the router) and an SMS source
# registration body (seed 001's schema), kept under the runs' 4096-byte limit.
_LINUX = (b'{"name":"web01","hostname":"web01","os_type":"LINUX","os_version":"UBUNTU22.04",'
          b'"agent_version":"1.0","ip":"10.0.0.5","ipv6":"fe80::1","firmware":"UEFI",'
          b'"boot_loader":"GRUB","has_rsync":true,"has_tc":true,"paravirtualization":false,'
          b'"raw_devices":"","cpu_quantity":"2","memory":4096,"io_read_wait":3.4,"platform":"hw",'
          b'"linux_block_check":"{\\"architecture\\": \\"x86_64\\"}",'
          b'"disks":[{"name":"/dev/vda","size":10737418240,"used_size":"4096","partition_style":"GPT",'
          b'"device_use":"BOOT","os_disk":true,"physical_volumes":[{"name":"/dev/vda1",'
          b'"size":1073741824,"file_system":"ext4","mount_point":"/","index":1,"inode_size":"256"}]}],'
          b'"volume_groups":[{"name":"vg1","size":2048,"components":"/dev/vdb1","logical_volumes":'
          b'[{"name":"/dev/mapper/vg1-lv1","size":1024,"block_size":4096,"inode_size":"256"}]}],'
          b'"btrfs_list":[{"name":"/dev/vda2","size":"3.30GiB","nodesize":"16384","sectorsize":"4096",'
          b'"subvolumn":[{"uuid":"u","is_snapshot":"false","subvol_id":"257","parent_id":"5"}]}],'
          b'"networks":[{"name":"eth0","ip":"10.0.0.5","mac":"aa:bb:cc:dd:ee:01","mtu":1500},'
          b'{"name":"eth1","mac":""}]}')
_WINDOWS = (b'{"name":"win","os_type":"WINDOWS","os_version":"WINDOWS2019_64BIT","agent_version":"1",'
            b'"ip":"10.0.0.6","firmware":"BIOS","system_dir":"C:\\\\Windows","driver_files":false,'
            b'"system_services":"false","account_rights":true,"disks":[{"name":"0","size":1}],'
            b'"networks":[{"mac":"aa:bb:cc:dd:ee:02"}]}')
SOURCES = {
    "linux": (1, _LINUX),
    "linux_router": (0, _LINUX),
    "windows": (2, _WINDOWS),
    "windows_router": (16, _WINDOWS),
    "minimal": (3, b'{"name":"n","os_type":"LINUX","os_version":"","agent_version":"",'
                   b'"ipv6":"::1","networks":[{"mac":"m"}]}'),
}


def main(out):
    for kind, seeds in (("http", HTTP), ("bodies", BODIES), ("sources", SOURCES)):
        d = os.path.join(out, kind)
        os.makedirs(d, exist_ok=True)
        for name, (mode, data) in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(bytes([mode]) + data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus"))
