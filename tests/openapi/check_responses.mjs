#!/usr/bin/env node
// Drives a running `dmsctl serve` through every route of docs/openapi.json, with successful calls
// and documented error calls, and checks every answer against the document: the status must be
// documented for the operation (found by path template and method), required headers present,
// the media type documented, and the JSON body valid against that status's schema (ajv, with
// ajv-formats; OpenAPI `nullable` and `$ref`s into components are translated).
//
//   node check_responses.mjs --base http://127.0.0.1:PORT --password ADMINPW \
//        --spec ../../docs/openapi.json --data-dir DIR \
//        [--user admin] [--max-running-workflows N] [--local-cluster-root DIR] [--volume-mib N]
//        [--min-operations N] [--verbose]
//
// DIR is a scratch directory for local clusters (DIR/clusterA, DIR/clusterB are attached as
// file:// endpoints; the service creates them). --max-running-workflows must be the server's
// (default 8): the 429 check submits that many long clones and one more. --local-cluster-root
// tells that the server was started with that root (serve --local-cluster-root): attaching
// outside it must answer 403. --volume-mib is the size of the volume the clones copy (default
// 128): large enough that a clone still runs while the busy, cancel and 429 checks are made
// (less with a server started with --copy-rate-limit). --min-operations defaults to every
// documented operation.
//
// Prints one line per check and a summary; exits 1 when an answer does not conform, a status is
// undocumented, an answer is not the one the contract (shared/docs/api-v1.md) calls for, or
// fewer than --min-operations operations were exercised; 2 on bad usage.

import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import Ajv from "ajv";
import addFormats from "ajv-formats";

// ------------------------------------------------------------------ arguments

const args = { user: "admin", maxRunning: 8, minOperations: null, verbose: false, volumeMiB: 128, root: null };
{
  const argv = process.argv.slice(2);
  const need = (i) => {
    if (i >= argv.length) usage(`${argv[i - 1]} needs a value`);
    return argv[i];
  };
  for (let i = 0; i < argv.length; i++) {
    switch (argv[i]) {
      case "--base": args.base = need(++i).replace(/\/+$/, ""); break;
      case "--password": args.password = need(++i); break;
      case "--spec": args.spec = need(++i); break;
      case "--data-dir": args.dataDir = path.resolve(need(++i)); break;
      case "--user": args.user = need(++i); break;
      case "--max-running-workflows": args.maxRunning = Number(need(++i)); break;
      case "--local-cluster-root": args.root = path.resolve(need(++i)); break;
      case "--volume-mib": args.volumeMiB = Number(need(++i)); break;
      case "--min-operations": args.minOperations = Number(need(++i)); break;
      case "--verbose": args.verbose = true; break;
      default: usage(`unknown argument ${argv[i]}`);
    }
  }
  for (const k of ["base", "password", "spec", "dataDir"])
    if (!args[k]) usage(`--${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} is required`);
  if (!Number.isInteger(args.maxRunning) || args.maxRunning < 1) usage("--max-running-workflows: a positive integer");
  if (!Number.isInteger(args.volumeMiB) || args.volumeMiB < 1 || args.volumeMiB > 4096) usage("--volume-mib: 1..4096");
}

function usage(msg) {
  console.error(`check_responses.mjs: ${msg}`);
  console.error(
    "usage: node check_responses.mjs --base URL --password PW --spec SPEC --data-dir DIR " +
      "[--user NAME] [--max-running-workflows N] [--local-cluster-root DIR] [--volume-mib N] " +
      "[--min-operations N] [--verbose]",
  );
  process.exit(2);
}

// ------------------------------------------------------------------ the document

const specText = fs.readFileSync(args.spec, "utf8");
const spec = JSON.parse(specText);
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function pointer(ref) {
  if (!ref.startsWith("#/")) throw new Error(`only local $refs are supported: ${ref}`);
  let o = spec;
  for (const part of ref.slice(2).split("/")) {
    o = o?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    if (o === undefined) throw new Error(`unresolved $ref ${ref}`);
  }
  return o;
}

function deref(o) {
  for (let n = 0; o && typeof o === "object" && typeof o.$ref === "string"; n++) {
    if (n > 32) throw new Error("$ref loop");
    o = pointer(o.$ref);
  }
  return o;
}

// An OpenAPI 3.0 schema as a JSON Schema ajv understands: `nullable: true` becomes a "null" type
// (and a null enum member), and local $refs point into the schema registered as "spec.json".
const SCHEMA_MAPS = new Set(["properties", "patternProperties", "definitions", "$defs"]);
function toAjv(s) {
  if (Array.isArray(s)) return s.map(toAjv);
  if (!s || typeof s !== "object") return s;
  const out = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === "nullable") continue;
    if (k === "$ref" && typeof v === "string" && v.startsWith("#/")) out.$ref = "spec.json" + v;
    else if (SCHEMA_MAPS.has(k) && v && typeof v === "object")
      out[k] = Object.fromEntries(Object.entries(v).map(([name, sub]) => [name, toAjv(sub)]));
    else out[k] = toAjv(v);
  }
  if (s.nullable === true) {
    if (typeof out.type === "string") out.type = [out.type, "null"];
    else if (Array.isArray(out.type)) out.type = [...new Set([...out.type, "null"])];
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
    if (out.type === undefined) return { anyOf: [out, { type: "null" }] };
  }
  return out;
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addSchema({ $id: "spec.json", components: { schemas: toAjv(spec.components?.schemas ?? {}) } });
const validators = new Map();
function validatorFor(key, schema) {
  if (!validators.has(key)) validators.set(key, ajv.compile(toAjv(schema)));
  return validators.get(key);
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const templates = Object.keys(spec.paths).map((t) => ({
  template: t,
  re: new RegExp("^" + t.split("/").map((seg) => (/^\{[^}]+\}$/.test(seg) ? "[^/]+" : escapeRe(seg))).join("/") + "$"),
  vars: (t.match(/\{/g) ?? []).length,
}));
const allOperations = [];
for (const [t, item] of Object.entries(spec.paths))
  for (const m of METHODS) if (item[m]) allOperations.push(`${m.toUpperCase()} ${t}`);

// The operation that answers METHOD on a path, as the router picks it: among the templates that
// match and have the method, the one with the fewest variables ("clusters/refresh" before
// "clusters/{clusterId}").
function lookup(method, urlPath) {
  const matching = templates.filter((x) => x.re.test(urlPath));
  const withMethod = matching.filter((x) => spec.paths[x.template][method.toLowerCase()]);
  withMethod.sort((a, b) => a.vars - b.vars);
  if (withMethod.length) {
    const t = withMethod[0].template;
    return { key: `${method} ${t}`, template: t, op: spec.paths[t][method.toLowerCase()] };
  }
  const allowed = new Set();
  for (const x of matching) for (const m of METHODS) if (spec.paths[x.template][m]) allowed.add(m.toUpperCase());
  return { key: null, pathMatched: matching.length > 0, allowed };
}

// ------------------------------------------------------------------ HTTP

const base = new URL(args.base);
const transport = base.protocol === "https:" ? https : http;

// One request on a fresh connection. opts: method, path, token, json (a value to send as JSON),
// body (raw string), headers, declaredLength (send only the headers, with this Content-Length,
// and wait for the answer: how a too-large body is refused before it is read).
function request(opts) {
  return new Promise((resolve, reject) => {
    const headers = { Accept: "application/json", ...(opts.headers ?? {}) };
    let payload = null;
    if (opts.json !== undefined) payload = JSON.stringify(opts.json);
    else if (opts.body !== undefined) payload = opts.body;
    if (payload !== null) {
      headers["Content-Type"] ??= "application/json";
      headers["Content-Length"] = Buffer.byteLength(payload);
    }
    if (opts.declaredLength !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = opts.declaredLength;
    }
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    const req = transport.request(
      {
        protocol: base.protocol,
        hostname: base.hostname,
        port: base.port,
        method: opts.method,
        path: opts.path,
        headers,
        agent: false,
        rejectUnauthorized: false,
        timeout: 30000,
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          if (opts.declaredLength !== undefined) req.destroy();
          resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (e) => {
      // The server may close while a refused request is still being written; an answer that
      // already came in stands.
      if (!["EPIPE", "ECONNRESET"].includes(e.code) || opts.declaredLength === undefined) reject(e);
    });
    if (opts.declaredLength !== undefined) {
      req.flushHeaders();
      return;
    }
    if (payload !== null) req.write(payload);
    req.end();
  });
}

// ------------------------------------------------------------------ checking

const results = { checks: 0, failed: 0 };
const exercised = new Map(); // operation key -> Set of statuses seen
const failures = [];

function headerSchemaOk(schema, value) {
  const s = deref(schema);
  if (!s) return true;
  let v = value;
  if (s.type === "integer" || s.type === "number") {
    if (!/^-?\d+(\.\d+)?$/.test(value)) return false;
    v = Number(value);
  }
  return validatorFor(JSON.stringify(s), s)(v);
}

// Sends `req`, checks the answer against the document, and that its status is one of `expect`
// (the contract's answer for this call). `extra(res)` may add semantic checks: it returns an
// error string, or nothing. Returns the answer with `json` parsed.
async function check(label, req, expect, extra, { quiet = false } = {}) {
  const method = req.method.toUpperCase();
  const urlPath = req.path.split("?")[0];
  const problems = [];
  let res;
  try {
    res = await request({ ...req, method });
  } catch (e) {
    res = { status: 0, headers: {}, text: "" };
    problems.push(`no answer: ${e.message}`);
  }
  const found = lookup(method, urlPath);
  let response = null;
  let opName;
  if (res.status) {
    if (found.key) {
      opName = `${found.key} [${found.op.operationId}]`;
      if (!exercised.has(found.key)) exercised.set(found.key, new Set());
      exercised.get(found.key).add(res.status);
      const responses = found.op.responses ?? {};
      response = responses[String(res.status)] ?? responses[`${String(res.status)[0]}XX`] ?? responses.default;
      if (!response) problems.push(`status ${res.status} is not documented for ${found.key}`);
    } else if (found.pathMatched) {
      opName = `${method} ${urlPath} (no such operation; path allows ${[...found.allowed].join(", ")})`;
      if (res.status === 405) {
        response = spec.components.responses.MethodNotAllowed;
        const allow = new Set((res.headers.allow ?? "").split(",").map((s) => s.trim()).filter(Boolean));
        if (!isDeepStrictEqual([...allow].sort(), [...found.allowed].sort()))
          problems.push(`Allow: "${res.headers.allow}" but the document has ${[...found.allowed].join(", ")}`);
      } else if (res.status === 404) {
        response = spec.components.responses.NotFound;
      } else {
        problems.push(`status ${res.status} for a method the path does not have (expected 405 or 404)`);
      }
    } else {
      opName = `${method} ${urlPath} (no such path)`;
      // Under SMS's /v3/sources the API gateway's body answers a path no route has.
      const sms = urlPath === "/v3/sources" || urlPath.startsWith("/v3/sources/");
      if (res.status === 404) response = spec.components.responses[sms ? "SmsApiNotFound" : "NotFound"];
      else problems.push(`status ${res.status} for a path the document does not have (expected 404)`);
    }
  }
  let json;
  if (response) {
    response = deref(response);
    for (const [name, h] of Object.entries(response.headers ?? {})) {
      const hd = deref(h);
      const value = res.headers[name.toLowerCase()];
      if (value === undefined) {
        if (hd.required) problems.push(`header ${name} is missing`);
      } else if (hd.schema && !headerSchemaOk(hd.schema, value)) {
        problems.push(`header ${name}: ${JSON.stringify(value)} does not match its schema`);
      }
    }
    const contentType = (res.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
    const content = response.content ?? {};
    const media = content[contentType];
    if (!Object.keys(content).length) {
      if (res.text.length) problems.push("a body where the document has none");
    } else if (!media) {
      problems.push(`Content-Type ${contentType || "(none)"} is not documented (${Object.keys(content).join(", ")})`);
    } else if (contentType === "application/json" || contentType.endsWith("+json")) {
      try {
        json = JSON.parse(res.text);
      } catch (e) {
        problems.push(`body is not JSON: ${e.message}`);
      }
      if (json !== undefined && media.schema) {
        const key = JSON.stringify(media.schema);
        const validate = validatorFor(key, media.schema);
        if (!validate(json)) {
          for (const e of validate.errors.slice(0, 8))
            problems.push(`body${e.instancePath || ""} ${e.message}${e.params && Object.keys(e.params).length ? " " + JSON.stringify(e.params) : ""}`);
        }
      }
    } else if (media.schema && deref(media.schema).type === "string") {
      // text: nothing more to check than that it is text
    }
  } else {
    try {
      json = JSON.parse(res.text);
    } catch {
      /* reported above */
    }
  }
  res.json = json;
  const expected = Array.isArray(expect) ? expect : [expect];
  if (res.status && !expected.includes(res.status))
    problems.push(`expected ${expected.join(" or ")}, got ${res.status}${json?.message ?? json?.error_msg ? ` (${json.message ?? json.error_msg})` : ""}`);
  if (extra && res.status && expected.includes(res.status) && !problems.length) {
    try {
      const why = extra(res);
      if (why) problems.push(why);
    } catch (e) {
      problems.push(`check threw: ${e.message}`);
    }
  }
  results.checks++;
  const line = `${res.status || "---"} ${method} ${req.path.length > 110 ? req.path.slice(0, 110) + "..." : req.path} -- ${label}`;
  if (problems.length) {
    results.failed++;
    console.log(`FAIL ${line}\n     operation: ${opName ?? "?"}`);
    for (const p of problems) console.log(`     - ${p}`);
    if (args.verbose || problems.some((p) => p.startsWith("body"))) console.log(`     body: ${res.text.slice(0, 600)}`);
    failures.push(`${line}: ${problems.join("; ")}`);
  } else if (!quiet || args.verbose) {
    console.log(`ok   ${line}`);
  }
  return res;
}

// Failures of the script's own logic (setup that could not be done) count like failed checks.
function fail(msg) {
  results.checks++;
  results.failed++;
  failures.push(msg);
  console.log(`FAIL ${msg}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

async function waitWorkflow(token, id, label, timeoutMs = 120000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (let n = 0; Date.now() < deadline; n++) {
    const res = await check(`poll ${label}`, { method: "GET", path: `/api/v1/workflows/${id}`, token }, 200, null, { quiet: n > 0 });
    last = res.json?.workflow;
    if (!last) return null;
    if (TERMINAL.has(last.state)) {
      console.log(`ok   workflow ${label} ${id} ended ${last.state}${last.msg ? ` (${last.msg})` : ""}`);
      return last;
    }
    await sleep(100);
  }
  fail(`workflow ${label} ${id} did not end within ${timeoutMs} ms (last state ${last?.state})`);
  return last;
}

const expectCode = (code) => (res) => (res.json?.code === code ? null : `expected error code ${code}, got ${res.json?.code}`);
const randomUuid = () => crypto.randomUUID();
// SMS's error body: its error_code, and the field error_param names.
const expectSms = (code, param) => (res) => {
  if (res.json?.error_code !== code) return `expected error_code ${code}, got ${res.json?.error_code}`;
  if (param !== undefined && res.json.error_param?.[0] !== param) return `expected error_param [${param}], got ${JSON.stringify(res.json.error_param)}`;
  return null;
};

// The example request of SMS's "register a source server" (tests/data/sms/register_source_seed.txt),
// its masks ("xxx") filled and its btrfs subvolumes shortened to four.
const SMS_SEED_SOURCE = {
  os_type: "LINUX",
  name: "host-192-168-136-111",
  os_version: "SUSE12_64BIT_SP2",
  linux_block_check: "{\"release_type\": \"SUSE\", \"release_version\": \"12.2\", \"kernel_simplification\": \"4.4.21\", \"architecture\": \"x86_64\", \"kernel_version\": \"4.4.21-69-default\"}",
  kernel_version: "4.4.21-69-default",
  paravirtualization: true,
  firmware: "BIOS",
  has_rsync: true,
  io_read_wait: 3.4,
  boot_loader: "GRUB",
  disks: [
    { name: "/dev/vda", device_use: "BOOT", size: 42949672960, partition_style: "MBR", used_size: 42948624384, physical_volumes: [
      { name: "/dev/vda1", size: 2153775104, device_use: "NORMAL", used_size: 2153775104, inode_size: 0, inode_nums: 0, file_system: "swap", mount_point: "" },
      { name: "/dev/vda2", size: 16862150656, device_use: "BTRFS", used_size: 16862150656, inode_size: 0, inode_nums: 0, file_system: "btrfs", mount_point: "" },
      { name: "/dev/vda3", size: 23932698624, device_use: "NORMAL", used_size: 33988608, inode_size: 0, inode_nums: 12345, file_system: "xfs", mount_point: "/home" } ] },
    { name: "/dev/vdb", device_use: "NORMAL", size: 21474836480, partition_style: "MBR", used_size: 21473787904, physical_volumes: [
      { name: "/dev/vdb1", size: 21473787904, device_use: "VOLUME_GROUP", used_size: 21473787904, inode_size: 0, inode_nums: 0, file_system: "LVM2_member", mount_point: "" } ] },
    { name: "/dev/vdc", device_use: "VOLUME_GROUP", size: 21474836480, partition_style: "MBR", used_size: 0, physical_volumes: [] },
  ],
  volume_groups: [
    { name: "vg1", size: 42948624384, components: "/dev/vdb1;/dev/vdc", logical_volumes: [
      { name: "/dev/mapper/vg1-lv1", device_use: "NORMAL", size: 10737418240, free_size: 10713837568, used_size: 23580672, file_system: "ext4", mount_point: "/mnt/lv1", inode_nums: 12345, inode_size: "256" } ] },
  ],
  btrfs_list: [
    { name: "/dev/vda2", label: "none", uuid: "11111111-1111-1111-1111-111111110001", device: "/dev/vda2", size: "3.30GiB", nodesize: "16384", sectorsize: "4096",
      data_profile: "single", system_profile: "single", metadata_profile: "single", global_reserve1: "single", g_vol_used_size: "3894038528",
      default_subvolid: "259", default_subvol_name: "@/.snapshots/1/snapshot", default_subvol_mountpath: "/", subvolumn: [
        { uuid: "11111111-1111-1111-1111-111111110001", is_snapshot: "false", subvol_id: "257", parent_id: "5", subvol_name: "@", subvol_mount_path: "null" },
        { uuid: "11111111-1111-1111-1111-111111110001", is_snapshot: "false", subvol_id: "258", parent_id: "257", subvol_name: "@/.snapshots", subvol_mount_path: "/.snapshots" },
        { uuid: "11111111-1111-1111-1111-111111110001", is_snapshot: "true", subvol_id: "259", parent_id: "258", subvol_name: "@/.snapshots/1/snapshot", subvol_mount_path: "/" },
        { uuid: "11111111-1111-1111-1111-111111110001", is_snapshot: "true", subvol_id: "282", parent_id: "258", subvol_name: "@/.snapshots/2/snapshot", subvol_mount_path: "null" },
      ] },
  ],
  cpu_quantity: 1,
  memory: 934752256,
  networks: [{ name: "eth0", ip: "192.168.136.111", netmask: "netmask", gateway: "gateway", mac: "1a9660eb8a3ffcf4df6d7865b52eb54f7b0cd194029e0eadd8e2c7f1267d80c0" }],
  ip: "192.168.136.111",
  agent_version: "2.2.1",
  platform: "hw",
};

// ------------------------------------------------------------------ the scenario

async function main() {
  console.log(`check_responses.mjs: ${args.base}, ${allOperations.length} documented operations`);
  fs.mkdirSync(args.dataDir, { recursive: true });

  // ---- operations endpoints
  for (let i = 0; ; i++) {
    let ok = false;
    try {
      ok = (await request({ method: "GET", path: "/readyz" })).status === 200;
    } catch {
      /* not yet */
    }
    if (ok) break;
    if (i > 300) return fail("the server never became ready (GET /readyz)");
    await sleep(100);
  }
  await check("liveness", { method: "GET", path: "/healthz" }, 200, (r) => (r.json.status === "ok" ? null : "status is not ok"));
  await check("malformed query escape", { method: "GET", path: "/healthz?x=%zz" }, 400, expectCode(3));
  await check("wrong method", { method: "POST", path: "/healthz" }, 405);
  await check("readiness", { method: "GET", path: "/readyz" }, 200);
  await check("metrics", { method: "GET", path: "/metrics" }, 200, (r) =>
    /^# HELP dms_/m.test(r.text) && /dms_http_requests_total/.test(r.text) ? null : "not the Prometheus metrics");
  await check("metrics ignore the query", { method: "GET", path: "/metrics?name=x" }, 200);
  await check("wrong method on /metrics", { method: "POST", path: "/metrics" }, 405);
  await check("unknown route", { method: "GET", path: "/api/v1/nothing-here" }, 404, expectCode(5));
  await check("unknown route under a known prefix", { method: "GET", path: "/api/v1/clusters/a/b" }, 404, expectCode(5));
  await check("headers over 8 KiB", { method: "GET", path: "/healthz", headers: { "X-Padding": "a".repeat(9000) } }, 431);

  // ---- the document itself
  await check("the OpenAPI document, without a token", { method: "GET", path: "/api/v1/openapi.json" }, 200, (r) =>
    isDeepStrictEqual(r.json, spec) ? null : "the served document differs from " + args.spec);

  // ---- authentication
  await check("no token", { method: "GET", path: "/api/v1/clusters" }, 401, expectCode(16));
  await check("not a Bearer header", { method: "GET", path: "/api/v1/clusters", headers: { Authorization: "Basic YWRtaW46eA==" } }, 401);
  await check("forged token", { method: "GET", path: "/api/v1/clusters", token: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.c2ln" }, 401);
  await check("no token on service-credentials", { method: "GET", path: "/api/v1/service-credentials" }, 401);
  await check("no token on a write", { method: "POST", path: "/api/v1/clusters", json: { apiEndpoint: "file:///nowhere" } }, 401);
  await check("no token on logout", { method: "POST", path: "/api/v1/logout" }, 401);

  const login = await check("log in with a JSON body", { method: "POST", path: "/api/v1/login", json: { username: args.user, password: args.password } }, 200,
    (r) => (r.json.tokenType === "Bearer" ? null : "tokenType is not Bearer"));
  const token = login.json?.idToken;
  if (!token) return fail("cannot log in; nothing else can be checked");
  const basic = Buffer.from(`${args.user}:${args.password}`).toString("base64");
  const login2 = await check("log in with HTTP Basic", { method: "POST", path: "/api/v1/login", headers: { Authorization: `Basic ${basic}` } }, 200);
  const token2 = login2.json?.idToken ?? token;
  await check("bad password", { method: "POST", path: "/api/v1/login", json: { username: args.user, password: "not-the-password" } }, 401, expectCode(16));
  await check("malformed Basic credentials", { method: "POST", path: "/api/v1/login", headers: { Authorization: "Basic !!!!" } }, 401);
  await check("login without a body", { method: "POST", path: "/api/v1/login" }, 400, expectCode(3));
  await check("login without password", { method: "POST", path: "/api/v1/login", json: { username: args.user } }, 400);
  await check("login with an unknown field", { method: "POST", path: "/api/v1/login", json: { username: args.user, password: args.password, otp: "1" } }, 400,
    (r) => (/otp/.test(r.json.message) ? null : "the message does not name the field"));
  await check("login with a wrong type", { method: "POST", path: "/api/v1/login", json: { username: 7, password: args.password } }, 400);
  await check("login with malformed JSON", { method: "POST", path: "/api/v1/login", body: "{\"username\":" }, 400);
  await check("login with a query parameter", { method: "POST", path: "/api/v1/login?x=1", json: { username: args.user, password: args.password } }, 400);
  await check("login with the wrong method", { method: "GET", path: "/api/v1/login" }, 405);
  // Five failures of one user from one address, then the sixth attempt is throttled.
  for (let i = 0; i < 5; i++)
    await check(`failed login ${i + 1} of an unknown user`, { method: "POST", path: "/api/v1/login", json: { username: "oapi-throttled", password: "wrong-password" } }, 401, null, { quiet: true });
  await check("throttled login", { method: "POST", path: "/api/v1/login", json: { username: "oapi-throttled", password: "wrong-password" } }, 429, expectCode(8));
  await check("body over 1 MiB", { method: "POST", path: "/api/v1/login", declaredLength: 2 * 1024 * 1024 }, 413);

  // ---- service credentials
  await check("service credentials", { method: "GET", path: "/api/v1/service-credentials", token }, 200);

  // ---- users (admin only), and the viewer and agent roles
  const UU = "/api/v1/users";
  const newPassword = (who) => `oapi-${who}-${crypto.randomBytes(8).toString("hex")}`;
  const logIn = async (label, username, password) =>
    (await check(label, { method: "POST", path: "/api/v1/login", json: { username, password } }, 200)).json?.idToken;
  const users0 = await check("list users", { method: "GET", path: UU, token }, 200, (r) =>
    r.json.users.some((u) => u.username === args.user && u.role === "admin") ? null : `${args.user} is not listed as an admin`);
  await check("list users with a query parameter", { method: "GET", path: `${UU}?pageSize=1`, token }, 400, expectCode(3));
  let viewerPw = newPassword("viewer");
  const agentPw = newPassword("agent");
  await check("create a viewer", { method: "POST", path: UU, token, json: { username: "oapi-viewer", password: viewerPw, role: "viewer" } }, 200, (r) =>
    r.json.user.username === "oapi-viewer" && r.json.user.role === "viewer" ? null : `user ${JSON.stringify(r.json.user)}`);
  await check("create an agent", { method: "POST", path: UU, token, json: { username: "oapi-agent", password: agentPw, role: "agent" } }, 200, (r) =>
    r.json.user.role === "agent" ? null : `user ${JSON.stringify(r.json.user)}`);
  await check("create a user whose name is taken", { method: "POST", path: UU, token, json: { username: "oapi-viewer", password: viewerPw, role: "viewer" } }, 409, expectCode(6));
  await check("create a user with an unknown role", { method: "POST", path: UU, token, json: { username: "oapi-x", password: viewerPw, role: "root" } }, 400, expectCode(3));
  await check("create a user with a short password", { method: "POST", path: UU, token, json: { username: "oapi-x", password: "short", role: "viewer" } }, 400, expectCode(3));
  await check("create a user with a bad name", { method: "POST", path: UU, token, json: { username: "bad name", password: viewerPw, role: "viewer" } }, 400, expectCode(3));
  await check("create a user without a role", { method: "POST", path: UU, token, json: { username: "oapi-x", password: viewerPw } }, 400, expectCode(3));
  await check("create a user with an unknown field", { method: "POST", path: UU, token, json: { username: "oapi-x", password: viewerPw, role: "viewer", email: "x@y" } }, 400, expectCode(3));
  let viewer = await logIn("log in as the viewer", "oapi-viewer", viewerPw);
  const agent = await logIn("log in as the agent", "oapi-agent", agentPw);
  if (viewer) {
    await check("a viewer reads clusters", { method: "GET", path: "/api/v1/clusters", token: viewer }, 200);
    await check("a viewer lists users", { method: "GET", path: UU, token: viewer }, 403, expectCode(7));
    await check("a viewer creates a user", { method: "POST", path: UU, token: viewer, json: { username: "oapi-x", password: viewerPw, role: "admin" } }, 403, expectCode(7));
  }
  if (agent) {
    await check("an agent lists users", { method: "GET", path: UU, token: agent }, 403, expectCode(7));
    await check("an agent reads clusters", { method: "GET", path: "/api/v1/clusters", token: agent }, 403, expectCode(7));
    await check("an agent reads the service credentials", { method: "GET", path: "/api/v1/service-credentials", token: agent }, 403, expectCode(7));
    await check("an agent logs out", { method: "POST", path: "/api/v1/logout", token: agent }, 403, expectCode(7));
  }
  const PW = (name) => `${UU}/${name}/password`;
  viewerPw = newPassword("viewer");
  await check("set a user's password", { method: "PUT", path: PW("oapi-viewer"), token, json: { password: viewerPw } }, 200);
  if (viewer) await check("the viewer's token from before", { method: "GET", path: "/api/v1/clusters", token: viewer }, 401, expectCode(16));
  viewer = await logIn("log in as the viewer with the new password", "oapi-viewer", viewerPw);
  await check("set a short password", { method: "PUT", path: PW("oapi-viewer"), token, json: { password: "short" } }, 400, expectCode(3));
  await check("set a password with an unknown field", { method: "PUT", path: PW("oapi-viewer"), token, json: { password: viewerPw, old: "x" } }, 400, expectCode(3));
  await check("set the password of an unknown user", { method: "PUT", path: PW("oapi-nobody"), token, json: { password: viewerPw } }, 404, expectCode(5));
  if (viewer) await check("a viewer sets a password", { method: "PUT", path: PW("oapi-viewer"), token: viewer, json: { password: viewerPw } }, 403, expectCode(7));
  await check("wrong method on a user", { method: "GET", path: `${UU}/oapi-viewer`, token }, 405);

  // ---- source servers: an agent registers through SMS's v3 routes (X-Auth-Token); SMS's and
  // the native routes read, change and delete them
  {
    const X = (t) => ({ "X-Auth-Token": t });
    const admin = X(token);
    const ag = X(agent ?? token);
    const SRC = "/v3/sources";
    const N = "/api/v1/source-servers";
    const unknownId = "0".repeat(32);
    const seed = () => structuredClone(SMS_SEED_SOURCE);
    await check("SMS register without a token", { method: "POST", path: SRC, json: seed() }, 401, expectSms("APIGW.0301"));
    await check("SMS register with a forged token", { method: "POST", path: SRC, headers: X("forged"), json: seed() }, 401, expectSms("APIGW.0301"));
    await check("SMS register the seed's example with its masked ip", { method: "POST", path: SRC, headers: ag, json: { ...seed(), ip: "192.168.136.xxx" } }, 400, expectSms("SMS.9001", "ip"));
    await check("SMS register with an unknown field", { method: "POST", path: SRC, headers: ag, json: { ...seed(), cpu: 2 } }, 400, expectSms("SMS.9001", "cpu"));
    await check("SMS register without networks", { method: "POST", path: SRC, headers: ag, json: { ...seed(), networks: [] } }, 400, expectSms("SMS.9001", "networks"));
    {
      const big = seed();
      big.disks[0].physical_volumes[1].size = "9223372036854775808";
      await check("SMS register a partition too large", { method: "POST", path: SRC, headers: ag, json: big }, 400, expectSms("SMS.9001", "disks[0].physical_volumes[1].size"));
    }
    await check("SMS register with an empty body", { method: "POST", path: SRC, headers: ag }, 400, expectSms("SMS.9001", "body"));
    if (viewer) await check("SMS register as a viewer", { method: "POST", path: SRC, headers: X(viewer), json: seed() }, 403, expectSms("SMS.9004"));
    const regA = await check("SMS register the seed's source (agent)", { method: "POST", path: SRC, headers: ag, json: seed() }, 200, (r) =>
      /^[0-9a-f]{32}$/.test(r.json.id) ? null : `id ${r.json.id}`);
    const idA = regA.json?.id;
    const macB = "02:00:00:00:00:0b";
    const sourceB = { ...seed(), name: "oapi-src-b", ip: "192.168.136.12", networks: [{ name: "eth0", ip: "192.168.136.12", mac: macB, mtu: 1500 }] };
    const regB = await check("SMS register a second source", { method: "POST", path: SRC, headers: ag, json: sourceB }, 200);
    const idB = regB.json?.id;
    if (idA && idB) {
      const A = `${SRC}/${idA}`;
      await check("SMS report the source again (found by its mac)", { method: "POST", path: SRC, headers: ag, json: { ...seed(), io_read_wait: "2.5" } }, 200, (r) =>
        r.json.id === idA ? null : `id ${r.json.id}, expected ${idA}`);
      await check("SMS report a source with another source's mac", { method: "POST", path: SRC, headers: ag, json: { ...seed(), id: idA, networks: [{ mac: macB }] } }, 401, expectSms("SMS.2013"));

      await check("SMS list sources (X-Auth-Token)", { method: "GET", path: SRC, headers: admin }, 200, (r) =>
        r.json.count >= 2 && r.json.source_servers.some((s) => s.id === idA && s.init_target_server.disks.length === 3) ? null : JSON.stringify(r.json).slice(0, 300));
      await check("SMS list sources (Authorization: Bearer)", { method: "GET", path: SRC, token }, 200);
      await check("SMS list a page", { method: "GET", path: `${SRC}?limit=1&offset=1`, headers: admin }, 200, (r) =>
        r.json.source_servers.length === 1 && r.json.count >= 2 ? null : `count ${r.json.count}, ${r.json.source_servers.length} listed`);
      await check("SMS list by name", { method: "GET", path: `${SRC}?name=oapi-src-b`, headers: admin }, 200, (r) =>
        r.json.count === 1 && r.json.source_servers[0].id === idB ? null : JSON.stringify(r.json).slice(0, 300));
      await check("SMS list by every filter", { method: "GET", path: `${SRC}?state=unavailable&id=${idA}&ip=192.168.136.111&migration_cycle=checking&connected=true&limit=0&offset=0`, headers: admin }, 200);
      if (viewer) await check("SMS list sources as a viewer", { method: "GET", path: SRC, headers: X(viewer) }, 200);
      await check("SMS list with limit 201", { method: "GET", path: `${SRC}?limit=201`, headers: admin }, 400, expectSms("SMS.9001", "limit"));
      await check("SMS list with an unknown state", { method: "GET", path: `${SRC}?state=running`, headers: admin }, 400, expectSms("SMS.9001", "state"));
      await check("SMS list with connected=maybe", { method: "GET", path: `${SRC}?connected=maybe`, headers: admin }, 400, expectSms("SMS.9001", "connected"));
      await check("SMS list with an unknown parameter", { method: "GET", path: `${SRC}?pageSize=1`, headers: admin }, 400, expectSms("SMS.9001"));
      await check("SMS list as an agent", { method: "GET", path: SRC, headers: ag }, agent ? 403 : 200);
      await check("SMS overview", { method: "GET", path: `${SRC}/overview`, headers: admin }, 200, (r) =>
        r.json.waiting + r.json.unavailable >= 2 ? null : JSON.stringify(r.json));
      await check("SMS overview with a query parameter", { method: "GET", path: `${SRC}/overview?x=1`, headers: admin }, 400, expectSms("SMS.9001"));
      await check("SMS show a source", { method: "GET", path: A, headers: admin }, 200, (r) => {
        const s = r.json, b = s.btrfs_list?.[0];
        if (s.id !== idA || s.networks[0].mac !== SMS_SEED_SOURCE.networks[0].mac) return `not source A: ${JSON.stringify(s).slice(0, 200)}`;
        // Canonical form: numbers given as strings and sizes with units are numbers.
        return b?.nodesize === 16384 && Number.isInteger(b.size) && b.size > 3 * 2 ** 30 && s.io_read_wait === 2.5 ? null : `not canonical: ${JSON.stringify(b).slice(0, 200)}`;
      });
      await check("SMS show an unknown source", { method: "GET", path: `${SRC}/${unknownId}`, headers: admin }, 404, expectSms("SMS.2216"));
      await check("SMS show as an agent", { method: "GET", path: A, headers: ag }, agent ? 403 : 200);
      await check("SMS poll for a command (agent)", { method: "GET", path: `${A}/command`, headers: ag }, 200, (r) =>
        r.json.command_name === "TASK_NOT_STARTED" ? null : `command ${r.json.command_name}`);
      await check("SMS poll for an unknown source's command", { method: "GET", path: `${SRC}/${unknownId}/command`, headers: ag }, 404, expectSms("SMS.2216"));
      await check("SMS path that no route has", { method: "GET", path: `${A}/nothing-here`, headers: admin }, 404, expectSms("APIGW.0101"));
      await check("SMS wrong method on a source", { method: "PATCH", path: A, headers: admin, json: {} }, 405);

      // ---- choose what to migrate
      await check("SMS update a source", { method: "PUT", path: A, headers: admin, json: {
        name: "oapi-src-a", migprojectid: "mp-1",
        disks: [{ id: "/dev/vdb", need_migration: false }, { id: "/dev/vda", adjust_size: "53687091200", physical_volumes: [{ id: "/dev/vda3", need_migration: true }] }],
        volume_groups: [{ id: "vg1", logical_volumes: [{ id: "/dev/mapper/vg1-lv1", adjust_size: 10737418240 }] }] } }, 200);
      await check("SMS show the updated source", { method: "GET", path: A, headers: admin }, 200, (r) => {
        const s = r.json, disks = s.init_target_server.disks;
        return s.name === "oapi-src-a" && s.migprojectid === "mp-1" && disks.length === 2 && disks[0].size === 53687091200 && s.totalsize === 53687091200 + 21474836480
          ? null : `not updated: ${JSON.stringify({ name: s.name, migprojectid: s.migprojectid, disks, totalsize: s.totalsize })}`;
      });
      await check("SMS update an unknown disk", { method: "PUT", path: A, headers: admin, json: { disks: [{ id: "/dev/nope" }] } }, 400, expectSms("SMS.9001", "disks[0].id"));
      await check("SMS shrink a disk", { method: "PUT", path: A, headers: admin, json: { disks: [{ id: "/dev/vda", adjust_size: "1024" }] } }, 400, expectSms("SMS.9001", "disks[0].adjust_size"));
      await check("SMS update with an unknown field", { method: "PUT", path: A, headers: admin, json: { cpu: 1 } }, 400, expectSms("SMS.9001", "cpu"));
      await check("SMS update a partition with an unknown field", { method: "PUT", path: A, headers: admin, json: { disks: [{ id: "/dev/vda", physical_volumes: [{ id: "/dev/vda1", size: 1 }] }] } }, 400, expectSms("SMS.9001"));
      await check("SMS update an unknown source", { method: "PUT", path: `${SRC}/${unknownId}`, headers: admin, json: { name: "x" } }, 404, expectSms("SMS.2216"));
      if (viewer) await check("SMS update as a viewer", { method: "PUT", path: A, headers: X(viewer), json: { name: "x" } }, 403, expectSms("SMS.9004"));

      // ---- changestate; a migrating source is neither deleted nor re-chosen
      const CS = `${A}/changestate`;
      await check("SMS changestate without migrationcycle", { method: "PUT", path: CS, headers: ag, json: { copystate: "WAITING" } }, 400, expectSms("SMS.9001", "migrationcycle"));
      await check("SMS changestate to an unknown state", { method: "PUT", path: CS, headers: ag, json: { copystate: "RUNNING", migrationcycle: "setting" } }, 400, expectSms("SMS.9001", "copystate"));
      await check("SMS changestate of an unknown source", { method: "PUT", path: `${SRC}/${unknownId}/changestate`, headers: ag, json: { copystate: "WAITING", migrationcycle: "setting" } }, 404, expectSms("SMS.2216"));
      await check("SMS changestate to REPLICATE (agent)", { method: "PUT", path: CS, headers: ag, json: { copystate: "REPLICATE", migrationcycle: "replicating" } }, 200);
      await check("SMS show a replicating source", { method: "GET", path: A, headers: admin }, 200, (r) =>
        r.json.state === "replicate" && r.json.migration_cycle === "replicating" ? null : `state ${r.json.state}, migration_cycle ${r.json.migration_cycle}`);
      await check("SMS delete a replicating source", { method: "DELETE", path: A, headers: admin }, 400, expectSms("SMS.2015"));
      await check("SMS batch-delete a replicating source", { method: "POST", path: `${SRC}/delete`, headers: admin, json: { ids: [idB, idA] } }, 400, expectSms("SMS.2015"));
      await check("SMS change the disks of a replicating source", { method: "PUT", path: A, headers: admin, json: { disks: [{ id: "/dev/vdb" }] } }, 400, expectSms("SMS.2015"));
      await check("delete a replicating source server", { method: "DELETE", path: `${N}/${idA}`, token }, 400, expectCode(9));
      await check("SMS changestate back to waiting", { method: "PUT", path: CS, headers: admin, json: { copystate: "waiting", migrationcycle: "checking" } }, 200);

      // ---- the native routes
      await check("list source servers", { method: "GET", path: N, token }, 200, (r) =>
        r.json.sourceServers.length >= 2 && r.json.nextPageToken === "" ? null : `${r.json.sourceServers.length} listed, nextPageToken "${r.json.nextPageToken}"`);
      const p1 = await check("list source servers one by one", { method: "GET", path: `${N}?pageSize=1`, token }, 200, (r) =>
        r.json.sourceServers.length === 1 && r.json.nextPageToken ? null : "not one item and a nextPageToken");
      if (p1.json?.nextPageToken)
        await check("the next page of source servers", { method: "GET", path: `${N}?pageSize=1&nextPageToken=${encodeURIComponent(p1.json.nextPageToken)}`, token }, 200, (r) =>
          r.json.sourceServers.length === 1 && r.json.sourceServers[0].id !== p1.json.sourceServers[0].id ? null : "not the next item");
      await check("list source servers by every filter", { method: "GET", path: `${N}?state=waiting&name=oapi-src&ip=192.168.136.111&migrationCycle=checking&connected=true`, token }, 200);
      await check("list source servers with connected=maybe", { method: "GET", path: `${N}?connected=maybe`, token }, 400, expectCode(3));
      await check("list source servers by an unknown migrationCycle", { method: "GET", path: `${N}?migrationCycle=flying`, token }, 400, (r) =>
        r.json.code === 3 && /^migrationCycle:/.test(r.json.message) ? null : `code ${r.json.code}: ${r.json.message}`);
      await check("list source servers with a forged page token", { method: "GET", path: `${N}?nextPageToken=garbage`, token }, 400, expectCode(3));
      await check("list source servers with SMS's limit", { method: "GET", path: `${N}?limit=1`, token }, 400, expectCode(3));
      await check("get a source server", { method: "GET", path: `${N}/${idA}`, token }, 200, (r) => {
        const s = r.json.sourceServer;
        const vdb = s.disks.find((x) => x.name === "/dev/vdb"), vda = s.disks.find((x) => x.name === "/dev/vda");
        return s.id === idA && s.name === "oapi-src-a" && s.report?.id === idA && s.reportedBy === (agent ? "oapi-agent" : args.user) &&
          vdb?.needMigration === false && vda?.adjustSize === "53687091200" ? null : `unexpected ${JSON.stringify(s).slice(0, 300)}`;
      });
      await check("get an unknown source server", { method: "GET", path: `${N}/${unknownId}`, token }, 404, expectCode(5));
      if (viewer) await check("get a source server as a viewer", { method: "GET", path: `${N}/${idA}`, token: viewer }, 200);
      if (agent) await check("list source servers as an agent", { method: "GET", path: N, token: agent }, 403, expectCode(7));
      if (viewer) await check("delete a source server as a viewer", { method: "DELETE", path: `${N}/${idB}`, token: viewer }, 403, expectCode(7));
      await check("delete a source server", { method: "DELETE", path: `${N}/${idB}`, token }, 200);
      await check("delete it again", { method: "DELETE", path: `${N}/${idB}`, token }, 404, expectCode(5));

      // ---- migrations: no cluster is attached yet, so only what they refuse; then the command
      // channel's results, which a source without a migration acknowledges
      {
        const MA = `${N}/${idA}`;
        const MIG = `${MA}/migrations/${randomUuid()}`;
        const DK = `${MIG}/disks/${encodeURIComponent("/dev/vda")}`;
        const names = (field) => (r) =>
          r.json.code === 3 && r.json.message.startsWith(`${field}:`) ? null : `code ${r.json.code}: ${r.json.message}`;
        const migrate = (json) => ({ method: "POST", path: `${MA}/migrations`, token, json });
        await check("migrate a source without clusterId", migrate({}), 400, names("clusterId"));
        await check("migrate a source without a body", { method: "POST", path: `${MA}/migrations`, token }, 400, names("body"));
        await check("migrate more than 64 disks", migrate({ clusterId: randomUuid(), disks: Array.from({ length: 65 }, (_, i) => `/dev/d${i}`) }), 400, names("disks"));
        await check("migrate with a negative rate limit", migrate({ clusterId: randomUuid(), rateLimitBytesPerSec: -1 }), 400, names("rateLimitBytesPerSec"));
        await check("migrate with an unknown field", migrate({ clusterId: randomUuid(), cutover: true }), 400, names("cutover"));
        await check("migrate into a cluster that is not attached", migrate({ clusterId: randomUuid(), syncing: true, rateLimitBytesPerSec: "1048576" }), 404, expectCode(5));
        await check("migrate an unknown source", { method: "POST", path: `${N}/${unknownId}/migrations`, token, json: { clusterId: randomUuid() } }, 404, expectCode(5));
        await check("migrate with a query parameter", { method: "POST", path: `${MA}/migrations?x=1`, token, json: { clusterId: randomUuid() } }, 400, expectCode(3));
        if (viewer) await check("migrate a source as a viewer", { ...migrate({ clusterId: randomUuid() }), token: viewer }, 403, expectCode(7));
        if (agent) await check("migrate a source as an agent", { ...migrate({ clusterId: randomUuid() }), token: agent }, 403, expectCode(7));
        await check("the latest migration of a source that has none", { method: "GET", path: `${MA}/migration`, token }, 404, expectCode(5));
        if (agent) await check("an agent reads the latest migration", { method: "GET", path: `${MA}/migration`, token: agent }, 404, expectCode(5));
        if (viewer) await check("a viewer reads the latest migration", { method: "GET", path: `${MA}/migration`, token: viewer }, 404, expectCode(5));
        await check("the latest migration with a query parameter", { method: "GET", path: `${MA}/migration?x=1`, token }, 400, expectCode(3));
        await check("an unknown migration", { method: "GET", path: MIG, token }, 404, expectCode(5));
        if (agent) await check("an agent reads an unknown migration", { method: "GET", path: MIG, token: agent }, 404, expectCode(5));
        for (const action of ["sync", "cutover", "stop", "start"])
          await check(`${action} a source that has no migration`, { method: "POST", path: `${MA}/${action}`, token, json: {} }, 404, expectCode(5));
        await check("stop without a body a source that has no migration", { method: "POST", path: `${MA}/stop`, token }, 404, expectCode(5));
        await check("sync with an unknown field", { method: "POST", path: `${MA}/sync`, token, json: { pass: 1 } }, 400, names("pass"));
        if (viewer) await check("cut over as a viewer", { method: "POST", path: `${MA}/cutover`, token: viewer, json: {} }, 403, expectCode(7));
        if (agent) await check("stop as an agent", { method: "POST", path: `${MA}/stop`, token: agent, json: {} }, 403, expectCode(7));
        // The agent's data stream.
        await check("open a disk of an unknown migration", { method: "POST", path: `${DK}/session`, token, json: {} }, 404, expectCode(5));
        if (agent) await check("an agent opens a disk of an unknown migration", { method: "POST", path: `${DK}/session`, token: agent, json: {} }, 404, expectCode(5));
        if (viewer) await check("a viewer opens a disk", { method: "POST", path: `${DK}/session`, token: viewer, json: {} }, 403, expectCode(7));
        await check("open a disk with a query parameter", { method: "POST", path: `${DK}/session?x=1`, token, json: {} }, 400, expectCode(3));
        await check("the checksums of a disk of an unknown migration", { method: "GET", path: `${DK}/checksums`, token }, 404, expectCode(5));
        if (agent) await check("an agent reads the checksums of an unknown migration", { method: "GET", path: `${DK}/checksums`, token: agent }, 404, expectCode(5));
        if (viewer) await check("a viewer reads the checksums of an unknown migration", { method: "GET", path: `${DK}/checksums`, token: viewer }, 404, expectCode(5));
        const octet = { "Content-Type": "application/octet-stream" };
        const W = `${DK}/data?session=${"0".repeat(32)}&from=0&to=1048576`;
        await check("a window of an unknown migration", { method: "POST", path: W, token, headers: octet, body: "" }, 404, expectCode(5));
        if (agent) await check("an agent sends a window of an unknown migration", { method: "POST", path: W, token: agent, headers: octet, body: "" }, 404, expectCode(5));
        if (viewer) await check("a viewer sends a window", { method: "POST", path: W, token: viewer, headers: octet, body: "" }, 403, expectCode(7));
        await check("a window sent as JSON", { method: "POST", path: W, token, json: {} }, 400, names("Content-Type"));
        await check("a window without from", { method: "POST", path: `${DK}/data?session=x&to=1048576`, token, headers: octet, body: "" }, 400, names("from"));
        await check("a window with a negative to", { method: "POST", path: `${DK}/data?session=x&from=0&to=-1`, token, headers: octet, body: "" }, 400, names("to"));
        await check("a window with an unknown parameter", { method: "POST", path: `${W}&pass=0`, token, headers: octet, body: "" }, 400, expectCode(3));
        await check("a window over the data stream's body limit", { method: "POST", path: W, token, declaredLength: 17 * 1024 * 1024 }, 413);

        const CR = `${A}/command_result`;
        const outcome = (o) => ({ command_name: "START", result: "success", result_detail: { msg: "pass 0 sent" }, ...o });
        await check("SMS report a command's success (agent)", { method: "POST", path: CR, headers: ag, json: outcome({}) }, 200);
        await check("SMS report a failure of a source that has no migration (agent)", { method: "POST", path: CR, headers: ag, json: outcome({ command_name: "SYNC", result: "fail", result_detail: { msg: "no disk /dev/vda" } }) }, 200);
        await check("SMS report an unknown command", { method: "POST", path: CR, headers: ag, json: outcome({ command_name: "FLY" }) }, 400, expectSms("SMS.9001", "command_name"));
        await check("SMS report a result that is neither success nor fail", { method: "POST", path: CR, headers: ag, json: outcome({ result: "maybe" }) }, 400, expectSms("SMS.9001", "result"));
        await check("SMS report without result_detail", { method: "POST", path: CR, headers: ag, json: { command_name: "START", result: "success" } }, 400, expectSms("SMS.9001", "result_detail"));
        await check("SMS report with an unknown field", { method: "POST", path: CR, headers: ag, json: outcome({ pass: 0 }) }, 400, expectSms("SMS.9001", "pass"));
        await check("SMS report for an unknown source", { method: "POST", path: `${SRC}/${unknownId}/command_result`, headers: ag, json: outcome({}) }, 404, expectSms("SMS.2216"));
        if (viewer) await check("SMS report as a viewer", { method: "POST", path: CR, headers: X(viewer), json: outcome({}) }, 403, expectSms("SMS.9004"));
        if (viewer) await check("SMS poll as a viewer", { method: "GET", path: `${A}/command`, headers: X(viewer) }, 403, expectSms("SMS.9004"));
        await check("SMS poll after the results (agent)", { method: "GET", path: `${A}/command`, headers: ag }, 200, (r) =>
          r.json.command_name === "TASK_NOT_STARTED" && r.json.command_param === undefined ? null : `command ${JSON.stringify(r.json)}`);
      }

      // ---- SMS's deletes
      const regC = await check("SMS register the deleted source again", { method: "POST", path: SRC, headers: ag, json: sourceB }, 200, (r) =>
        r.json.id !== idB ? null : "the deleted source's id came back");
      const D = `${SRC}/delete`;
      await check("SMS batch-delete no ids", { method: "POST", path: D, headers: admin, json: { ids: [] } }, 400, expectSms("SMS.9001", "ids"));
      await check("SMS batch-delete a repeated id", { method: "POST", path: D, headers: admin, json: { ids: [idA, idA] } }, 400, expectSms("SMS.9001", "ids[1]"));
      await check("SMS batch-delete an unknown source", { method: "POST", path: D, headers: admin, json: { ids: [idA, unknownId] } }, 404, expectSms("SMS.2216"));
      if (agent) await check("SMS batch-delete as an agent", { method: "POST", path: D, headers: ag, json: { ids: [idA] } }, 403, expectSms("SMS.9004"));
      if (regC.json?.id) await check("SMS batch-delete a source", { method: "POST", path: D, headers: admin, json: { ids: [regC.json.id] } }, 200);
      if (agent) await check("SMS delete a source as an agent", { method: "DELETE", path: A, headers: ag }, 403, expectSms("SMS.9004"));
      await check("SMS delete a source", { method: "DELETE", path: A, headers: admin }, 200);
      await check("SMS delete it again", { method: "DELETE", path: A, headers: admin }, 404, expectSms("SMS.2216"));
      await check("SMS no source is left", { method: "GET", path: SRC, headers: admin }, 200, (r) => (r.json.count === 0 ? null : `count ${r.json.count}`));
    } else {
      fail("SMS: cannot register the sources; the source-server routes were not exercised");
    }
  }

  // ---- users: deletes
  const admins = (users0.json?.users ?? []).filter((u) => u.role === "admin");
  if (admins.length === 1 && admins[0].username === args.user)
    await check("delete the last admin", { method: "DELETE", path: `${UU}/${args.user}`, token }, 400, expectCode(9));
  if (viewer) await check("a viewer deletes a user", { method: "DELETE", path: `${UU}/oapi-agent`, token: viewer }, 403, expectCode(7));
  await check("delete a user", { method: "DELETE", path: `${UU}/oapi-viewer`, token }, 200);
  await check("delete it again", { method: "DELETE", path: `${UU}/oapi-viewer`, token }, 404, expectCode(5));
  await check("delete the agent", { method: "DELETE", path: `${UU}/oapi-agent`, token }, 200);
  await check("the users left", { method: "GET", path: UU, token }, 200, (r) =>
    r.json.users.some((u) => u.username.startsWith("oapi-")) ? `left over: ${r.json.users.map((u) => u.username)}` : null);

  // ---- clusters
  const dirA = path.join(args.dataDir, "clusterA");
  const dirB = path.join(args.dataDir, "clusterB");
  const C = "/api/v1/clusters";
  await check("list clusters", { method: "GET", path: C, token }, 200);
  await check("list clusters with an unknown query parameter", { method: "GET", path: `${C}?pageSize=1`, token }, 400);
  await check("attach without a body", { method: "POST", path: C, token }, 400);
  await check("attach with a relative file:// path", { method: "POST", path: C, token, json: { apiEndpoint: "file://relative/dir" } }, 400);
  await check("attach with an unknown field", { method: "POST", path: C, token, json: { apiEndpoint: `file://${dirA}`, zone: "a" } }, 400);
  await check("attach with a wrong type", { method: "POST", path: C, token, json: { apiEndpoint: 42 } }, 400);
  await check("attach with a bad name", { method: "POST", path: C, token, json: { apiEndpoint: `file://${dirA}`, name: "bad name!" } }, 400);
  await check("attach a body that is not an object", { method: "POST", path: C, token, body: "[1]" }, 400);
  if (args.root)
    await check("attach outside the local cluster roots", { method: "POST", path: C, token, json: { apiEndpoint: `file://${path.dirname(args.root)}/oapi-outside-root` } }, 403, expectCode(7));
  // A Lightbits endpoint is accepted; its workflow then fails (the name does not resolve).
  const attachLb = await check("attach a Lightbits cluster", { method: "POST", path: C, token, json: { apiEndpoint: "lightbits.invalid:443" } }, 200);
  if (attachLb.json?.workflowId) await waitWorkflow(token, attachLb.json.workflowId, "attach Lightbits");
  await check("wrong method on clusters", { method: "PUT", path: C, token, json: {} }, 405);

  const attachA = await check("attach cluster A", { method: "POST", path: C, token, json: { apiEndpoint: `file://${dirA}`, name: "clusterA" } }, 200);
  const wA = attachA.json?.workflowId && (await waitWorkflow(token, attachA.json.workflowId, "attach A"));
  const cidA = wA?.result?.clusterId;
  const attachB = await check("attach cluster B (default name)", { method: "POST", path: C, token, json: { apiEndpoint: `file://${dirB}/` } }, 200);
  const wB = attachB.json?.workflowId && (await waitWorkflow(token, attachB.json.workflowId, "attach B"));
  const cidB = wB?.result?.clusterId;
  if (!cidA || !cidB) return fail("cannot attach the local clusters; nothing else can be checked");
  if (wA.state !== "COMPLETED" || !wA.attachClusterRequest) fail("attach A: not COMPLETED with its attachClusterRequest");
  const again = await check("attach cluster A again (the workflow fails)", { method: "POST", path: C, token, json: { apiEndpoint: `file://${dirA}` } }, 200);
  const wAgain = again.json?.workflowId && (await waitWorkflow(token, again.json.workflowId, "attach A again"));
  if (wAgain && (wAgain.state !== "FAILED" || !wAgain.msg)) fail(`attaching an attached cluster ended ${wAgain.state} "${wAgain.msg}", expected FAILED with a msg`);

  await check("list clusters", { method: "GET", path: C, token }, 200, (r) =>
    r.json.clusters.length >= 2 ? null : `${r.json.clusters.length} clusters listed, expected 2`);
  await check("get cluster A", { method: "GET", path: `${C}/${cidA}`, token }, 200, (r) => {
    const c = r.json.cluster;
    if (c.kind !== "local") return `kind ${c.kind}`;
    if (!isDeepStrictEqual(c.apiEndpoints, [`file://${dirA}`])) return `apiEndpoints ${JSON.stringify(c.apiEndpoints)}`;
    return c.name === "clusterA" ? null : `name ${c.name}`;
  });
  await check("get an unknown cluster", { method: "GET", path: `${C}/${randomUuid()}`, token }, 404, expectCode(5));
  await check("get a cluster by a non-UUID", { method: "GET", path: `${C}/not-a-uuid`, token }, 404);
  await check("GET clusters/refresh is getCluster(\"refresh\")", { method: "GET", path: `${C}/refresh`, token }, 404);
  await check("wrong method on clusters/refresh", { method: "PUT", path: `${C}/refresh`, token }, 405);
  await check("malformed path escape", { method: "GET", path: `${C}/%zz`, token }, 400);

  const refreshAll = await check("refresh every cluster (empty body)", { method: "POST", path: `${C}/refresh`, token }, 200);
  if (refreshAll.json?.workflowId) {
    const w = await waitWorkflow(token, refreshAll.json.workflowId, "refresh all");
    if (w && (w.state !== "COMPLETED" || w.result.connected !== 2)) fail(`refresh all ended ${w.state} with ${JSON.stringify(w.result)}`);
  }
  const refreshA = await check("refresh cluster A", { method: "POST", path: `${C}/refresh`, token, json: { clusterId: cidA } }, 200);
  if (refreshA.json?.workflowId) await waitWorkflow(token, refreshA.json.workflowId, "refresh A");
  await check("refresh with a non-UUID clusterId", { method: "POST", path: `${C}/refresh`, token, json: { clusterId: "nope" } }, 400);
  await check("refresh an unknown cluster", { method: "POST", path: `${C}/refresh`, token, json: { clusterId: randomUuid() } }, 404);
  await check("refresh with an unknown field", { method: "POST", path: `${C}/refresh`, token, json: { all: true } }, 400);
  await check("refresh with malformed JSON", { method: "POST", path: `${C}/refresh`, token, body: "{" }, 400);
  await check("refreshed cluster has refreshedAt", { method: "GET", path: `${C}/${cidA}`, token }, 200, (r) =>
    r.json.cluster.refreshedAt ? null : "no refreshedAt after a refresh");

  // ---- manageable volumes: a raw image under cluster A's import/ is adopted and given back
  {
    fs.mkdirSync(path.join(dirA, "import"), { recursive: true });
    fs.writeFileSync(path.join(dirA, "import", "oapi.img"), Buffer.alloc(1 << 20, 7));
    fs.writeFileSync(path.join(dirA, "import", "odd.img"), Buffer.alloc(100, 7));
    const M = `${C}/${cidA}/manageable-volumes`;
    await check("list manageable volumes", { method: "GET", path: `${M}?sort=reference:asc`, token }, 200, (r) =>
      r.json.manageableVolumes.some((m) => m.reference["source-name"] === "import/oapi.img" && m.safeToManage) ? null : "import/oapi.img not listed as safe");
    await check("list manageable volumes with details", { method: "GET", path: `${M}/detail?sort=size:asc&limit=2`, token }, 200, (r) =>
      r.json.manageableVolumes.length === 2 ? null : `${r.json.manageableVolumes.length} listed, expected 2`);
    await check("list manageable volumes by a bad sort key", { method: "GET", path: `${M}?sort=name`, token }, 400, expectCode(3));
    await check("list manageable volumes after an unknown marker", { method: "GET", path: `${M}/detail?marker=${encodeURIComponent('{"source-name":"nope"}')}`, token }, 400, expectCode(3));
    await check("manage an unsafe candidate", { method: "POST", path: M, token, json: { ref: { "source-name": "import/odd.img" }, projectName: "p1" } }, 400, expectCode(3));
    await check("manage without a projectName", { method: "POST", path: M, token, json: { ref: { "source-name": "import/oapi.img" } } }, 400, expectCode(3));
    const managed = await check("manage a candidate", { method: "POST", path: M, token, json: { ref: { "source-name": "import/oapi.img" }, projectName: "p1", name: "adopted" } }, 200);
    const wm = managed.json?.workflowId && (await waitWorkflow(token, managed.json.workflowId, "manage"));
    if (wm && wm.state !== "COMPLETED") fail(`manage ended ${wm.state} "${wm.msg}"`);
    const U = `${C}/${cidA}/projects/p1/volumes/${managed.json?.volumeId}/unmanage`;
    await check("unmanage with an unknown field", { method: "POST", path: U, token, json: { force: true } }, 400, expectCode(3));
    await check("unmanage a volume", { method: "POST", path: U, token }, 200, (r) =>
      r.json.reference["source-name"] === "import/oapi.img" ? null : `given back as ${JSON.stringify(r.json.reference)}`);
    await check("unmanage it again", { method: "POST", path: U, token }, 404, expectCode(5));
  }

  // ---- the same through Cinder's routes, with a Keystone-style token header
  {
    fs.writeFileSync(path.join(dirA, "import", "cinder.img"), Buffer.alloc(1 << 20, 9));
    const K = (v) => ({ "X-Auth-Token": token, ...(v ? { "OpenStack-API-Version": `volume ${v}` } : {}) });
    const V3 = "/v3/proj1";
    await check("Cinder's version document", { method: "GET", path: "/" }, 300, (r) =>
      r.json.versions[0].version === "3.71" ? null : `versions ${JSON.stringify(r.json.versions)}`);
    for (const [label, p, v] of [["manageable_volumes", "manageable_volumes", "3.8"], ["os-volume-manage", "os-volume-manage", null]]) {
      await check(`Cinder ${label}`, { method: "GET", path: `${V3}/${p}?host=dms@${cidA}%23p1`, headers: K(v) }, 200, (r) =>
        r.json["manageable-volumes"].some((m) => m.reference["source-name"] === "import/cinder.img" && m.safe_to_manage) ? null : "import/cinder.img not listed as safe");
      await check(`Cinder ${label} in detail`, { method: "GET", path: `${V3}/${p}/detail?host=${cidA}&sort=size:asc&limit=1`, headers: K(v) }, 200, (r) =>
        r.json["manageable-volumes"].length === 1 && "reason_not_safe" in r.json["manageable-volumes"][0] ? null : `${JSON.stringify(r.json)}`);
      await check(`Cinder ${label} without a host`, { method: "GET", path: `${V3}/${p}/detail`, headers: K(v) }, 400, (r) =>
        r.json.badRequest?.message === "Invalid input received: Host field is missing." ? null : JSON.stringify(r.json));
      await check(`Cinder ${label} on an unknown host`, { method: "GET", path: `${V3}/${p}?host=nowhere`, headers: K(v) }, 404);
    }
    await check("Cinder manageable_volumes below 3.8", { method: "GET", path: `${V3}/manageable_volumes?host=${cidA}`, headers: K("3.7") }, 404);
    await check("Cinder manageable_volumes detail below 3.8", { method: "GET", path: `${V3}/manageable_volumes/detail?host=${cidA}`, headers: K("3.7") }, 404);
    await check("Cinder list at an unsupported microversion", { method: "GET", path: `${V3}/os-volume-manage/detail?host=${cidA}`, headers: K("3.999") }, 406);
    await check("Cinder list without a token", { method: "GET", path: `${V3}/os-volume-manage?host=${cidA}` }, 401);
    await check("Cinder manage with a schema error", { method: "POST", path: `${V3}/os-volume-manage`, headers: K(), json: { volume: { host: cidA } } }, 400);
    await check("Cinder manage below 3.8", { method: "POST", path: `${V3}/manageable_volumes`, headers: K("3.7"), json: { volume: { host: cidA, ref: { "source-name": "import/cinder.img" } } } }, 404);
    await check("Cinder manage of an unsafe candidate", { method: "POST", path: `${V3}/manageable_volumes`, headers: K("3.8"), json: { volume: { host: cidA, ref: { "source-name": "import/odd.img" } } } }, 400);
    const m = await check("Cinder manage", { method: "POST", path: `${V3}/os-volume-manage`, headers: K(), json: { volume: { host: `dms@${cidA}#p1`, ref: { "source-name": "import/cinder.img" }, name: "From Cinder", description: null, volume_type: null, availability_zone: null, metadata: { k: "v" }, bootable: false } } }, 202, (r) =>
      r.json.volume.status === "creating" && r.json.volume.size === 0 ? null : `volume ${JSON.stringify(r.json.volume)}`);
    const vid = m.json?.volume?.id;
    let shown;
    for (let i = 0; i < 100 && vid; i++) {
      shown = await check("Cinder show a managed volume", { method: "GET", path: `${V3}/volumes/${vid}`, headers: K("3.65") }, 200, null, { quiet: i > 0 });
      if (shown.json?.volume?.status !== "creating") break;
      await new Promise((res) => setTimeout(res, 50));
    }
    if (shown?.json?.volume?.status !== "available" || shown.json.volume.size !== 1) fail(`Cinder volume ${JSON.stringify(shown?.json)}`);
    await check("Cinder show an unknown volume", { method: "GET", path: `${V3}/volumes/${randomUuid()}`, headers: K() }, 404);
    await check("Cinder action that is not served", { method: "POST", path: `${V3}/volumes/${vid}/action`, headers: K(), json: { "os-extend": { new_size: 2 } } }, 400);
    await check("Cinder os-unmanage", { method: "POST", path: `${V3}/volumes/${vid}/action`, headers: K(), json: { "os-unmanage": null } }, 202, () =>
      fs.existsSync(path.join(dirA, "import", "cinder.img")) ? null : "import/cinder.img not given back");
    await check("Cinder os-unmanage again", { method: "POST", path: `${V3}/volumes/${vid}/action`, headers: K(), json: { "os-unmanage": {} } }, 404);
  }

  // ---- manageable snapshots: snapshot files beside an image, adopted through both faces
  {
    fs.writeFileSync(path.join(dirA, "import", "snapbase.img"), Buffer.alloc(1 << 20, 3));
    fs.writeFileSync(path.join(dirA, "import", "snapbase.img@one"), Buffer.alloc(1 << 20, 4));
    fs.writeFileSync(path.join(dirA, "import", "snapbase.img@two"), Buffer.alloc(1 << 20, 5));
    const MS = `${C}/${cidA}/manageable-snapshots`;
    await check("list manageable snapshots", { method: "GET", path: `${MS}?sort=reference:asc`, token }, 200, (r) =>
      r.json.manageableSnapshots.some((m) => m.reference["source-name"] === "import/snapbase.img@one" && m.sourceReference["source-name"] === "import/snapbase.img") ? null : "import/snapbase.img@one not listed with its volume");
    await check("list manageable snapshots with details", { method: "GET", path: `${MS}/detail?limit=1`, token }, 200, (r) =>
      r.json.manageableSnapshots.length === 1 ? null : `${r.json.manageableSnapshots.length} listed`);
    await check("list manageable snapshots by a bad sort key", { method: "GET", path: `${MS}?sort=name`, token }, 400, expectCode(3));
    const mv = await check("manage the snapshots' volume", { method: "POST", path: `${C}/${cidA}/manageable-volumes`, token, json: { ref: { "source-name": "import/snapbase.img" }, projectName: "p1", name: "snapbase" } }, 200);
    const vid = mv.json?.volumeId;
    if (mv.json?.workflowId) await waitWorkflow(token, mv.json.workflowId, "manage snapbase");
    await check("manage a snapshot without volumeId", { method: "POST", path: MS, token, json: { ref: { "source-name": "import/snapbase.img@one" }, projectName: "p1" } }, 400, expectCode(3));
    await check("manage a snapshot of an unknown volume", { method: "POST", path: MS, token, json: { ref: { "source-name": "import/snapbase.img@one" }, projectName: "p1", volumeId: randomUuid() } }, 404, expectCode(5));
    const ms = await check("manage a snapshot", { method: "POST", path: MS, token, json: { ref: { "source-name": "import/snapbase.img@one" }, projectName: "p1", volumeId: vid } }, 200);
    const wsn = ms.json?.workflowId && (await waitWorkflow(token, ms.json.workflowId, "manage snapshot"));
    if (wsn && wsn.state !== "COMPLETED") fail(`manage snapshot ended ${wsn.state} "${wsn.msg}"`);
    const US = `${C}/${cidA}/projects/p1/snapshots/${ms.json?.snapshotId}/unmanage`;
    await check("unmanage a snapshot", { method: "POST", path: US, token }, 200, (r) =>
      r.json.reference["source-name"] === "import/snapbase.img@one" ? null : `given back as ${JSON.stringify(r.json.reference)}`);
    await check("unmanage a snapshot again", { method: "POST", path: US, token }, 404, expectCode(5));

    const K = (v) => ({ "X-Auth-Token": token, ...(v ? { "OpenStack-API-Version": `volume ${v}` } : {}) });
    const V3 = "/v3/proj1";
    for (const [p, v] of [["manageable_snapshots", "3.8"], ["os-snapshot-manage", null]]) {
      await check(`Cinder ${p}`, { method: "GET", path: `${V3}/${p}?host=${cidA}`, headers: K(v) }, 200, (r) =>
        r.json["manageable-snapshots"].some((m) => m.source_reference["source-name"] === "import/snapbase.img") ? null : JSON.stringify(r.json));
      await check(`Cinder ${p} in detail`, { method: "GET", path: `${V3}/${p}/detail?host=${cidA}`, headers: K(v) }, 200);
      await check(`Cinder ${p} without a host`, { method: "GET", path: `${V3}/${p}`, headers: K(v) }, 400);
    }
    await check("Cinder manageable_snapshots below 3.8", { method: "GET", path: `${V3}/manageable_snapshots/detail?host=${cidA}`, headers: K("3.7") }, 404);
    await check("Cinder snapshot manage with a schema error", { method: "POST", path: `${V3}/os-snapshot-manage`, headers: K(), json: { snapshot: { ref: {} } } }, 400, (r) =>
      r.json.badRequest?.message === "Invalid input for field/attribute snapshot. Value: {'ref': {}}. 'volume_id' is a required property" ? null : JSON.stringify(r.json));
    await check("Cinder snapshot manage of an unknown volume", { method: "POST", path: `${V3}/os-snapshot-manage`, headers: K(), json: { snapshot: { volume_id: randomUuid(), ref: { "source-name": "import/snapbase.img@two" } } } }, 404);
    const cs = await check("Cinder snapshot manage", { method: "POST", path: `${V3}/manageable_snapshots`, headers: K("3.8"), json: { snapshot: { volume_id: vid, ref: { "source-name": "import/snapbase.img@two" }, name: "Two", description: null, metadata: null } } }, 202, (r) =>
      r.json.snapshot.status === "creating" && r.json.snapshot.volume_id === vid ? null : JSON.stringify(r.json));
    const sid = cs.json?.snapshot?.id;
    let shown;
    for (let i = 0; i < 100 && sid; i++) {
      shown = await check("Cinder show a managed snapshot", { method: "GET", path: `${V3}/snapshots/${sid}`, headers: K("3.65") }, 200, null, { quiet: i > 0 });
      if (shown.json?.snapshot?.status !== "creating") break;
      await new Promise((res) => setTimeout(res, 50));
    }
    if (shown?.json?.snapshot?.status !== "available" || shown.json.snapshot.name !== "Two") fail(`Cinder snapshot ${JSON.stringify(shown?.json)}`);
    await check("Cinder show an unknown snapshot", { method: "GET", path: `${V3}/snapshots/${randomUuid()}`, headers: K() }, 404);
    await check("Cinder snapshot action that is not served", { method: "POST", path: `${V3}/snapshots/${sid}/action`, headers: K(), json: { "os-reset_status": { status: "error" } } }, 400);
    await check("Cinder snapshot os-unmanage", { method: "POST", path: `${V3}/snapshots/${sid}/action`, headers: K(), json: { "os-unmanage": {} } }, 202, () =>
      fs.existsSync(path.join(dirA, "import", "snapbase.img@two")) ? null : "import/snapbase.img@two not given back");
    await check("unmanage the snapshots' volume", { method: "POST", path: `${C}/${cidA}/projects/p1/volumes/${vid}/unmanage`, token }, 200);
  }

  // ---- clusters never overlap; a cluster whose metadata is lost waits for a repair
  await check("attach a directory inside cluster A", { method: "POST", path: C, token, json: { apiEndpoint: `file://${dirA}/data/inner` } }, 400, expectCode(9));
  await check("attach the directory that holds cluster A", { method: "POST", path: C, token, json: { apiEndpoint: `file://${args.dataDir}` } }, 400, expectCode(9));
  await check("repair a cluster that needs none", { method: "POST", path: `${C}/${cidA}/repair`, token }, 400, expectCode(9));
  await check("repair an unknown cluster", { method: "POST", path: `${C}/${randomUuid()}/repair`, token }, 404, expectCode(5));
  await check("repair with an unknown field", { method: "POST", path: `${C}/${cidA}/repair`, token, json: { force: true } }, 400, expectCode(3));
  {
    const dirC = path.join(args.dataDir, "clusterC");
    const attachC = await check("attach cluster C", { method: "POST", path: C, token, json: { apiEndpoint: `file://${dirC}`, name: "clusterC" } }, 200);
    const wC = attachC.json?.workflowId && (await waitWorkflow(token, attachC.json.workflowId, "attach C"));
    const cidC = wC?.result?.clusterId;
    if (!cidC) return fail("cannot attach cluster C");
    const vc = await check("create a volume on C", { method: "POST", path: `${C}/${cidC}/projects/p1/volumes`, token, json: { name: "kept", size: "1048576" } }, 200);
    await check("detach cluster C", { method: "DELETE", path: `${C}/${cidC}`, token }, 200);
    for (const f of ["cluster.db", "cluster.db-wal", "cluster.db-shm"]) fs.rmSync(path.join(dirC, f), { force: true });
    const again = await check("attach cluster C without its metadata", { method: "POST", path: C, token, json: { apiEndpoint: `file://${dirC}` } }, 200);
    if (again.json?.workflowId) await waitWorkflow(token, again.json.workflowId, "attach C again");
    await check("a cluster without its metadata needs repair", { method: "GET", path: `${C}/${cidC}`, token }, 200, (r) => {
      const s = r.json.cluster.clusterConnectionStatus;
      return s.accessConnectionStatus === "NeedsRepair" && s.message ? null : `status ${JSON.stringify(s)}`;
    });
    await check("a cluster that needs repair refuses volume lists", { method: "GET", path: `${C}/${cidC}/projects/p1/volumes`, token }, 400, expectCode(9));
    const rep = await check("repair cluster C", { method: "POST", path: `${C}/${cidC}/repair`, token }, 200);
    const wr = rep.json?.workflowId && (await waitWorkflow(token, rep.json.workflowId, "repair C"));
    if (!wr || wr.state !== "COMPLETED" || wr.result.volumes !== 1 || !wr.repairClusterRequest) fail(`repair C ended ${JSON.stringify(wr)}`);
    await check("a repaired cluster lists its volume again", { method: "GET", path: `${C}/${cidC}/projects/p1/volumes`, token }, 200, (r) =>
      r.json.volumes.length === 1 && r.json.volumes[0].id === vc.json?.volume?.id ? null : `volumes ${JSON.stringify(r.json.volumes)}`);
    await check("detach the repaired cluster", { method: "DELETE", path: `${C}/${cidC}`, token }, 200);
  }

  // ---- volumes
  const P = "p1";
  const V = (cid, p = P) => `${C}/${cid}/projects/${p}/volumes`;
  const S = (cid, p = P) => `${C}/${cid}/projects/${p}/snapshots`;
  const SIZE = args.volumeMiB << 20; // big enough that a clone runs for a while (cancel, busy and 429 checks)
  const v1 = await check("create a volume", { method: "POST", path: V(cidA), token, json: { name: "vol-1", size: String(SIZE) } }, 200, (r) => {
    const v = r.json.volume;
    if (v.size !== String(SIZE) || v.state !== "Available" || v.replicaCount !== 1 || v.sectorSize !== 4096) return `unexpected volume ${JSON.stringify(v)}`;
    return v.sourceSnapshotId === "" ? null : "sourceSnapshotId is not empty";
  });
  const vol1 = v1.json?.volume;
  if (!vol1) return fail("cannot create a volume; nothing else can be checked");
  // Random data, so that copies take a while and verifyClone compares something.
  if (!path.resolve(vol1.devicePath).startsWith(args.dataDir + path.sep)) return fail(`devicePath ${vol1.devicePath} is outside ${args.dataDir}`);
  {
    const fd = fs.openSync(vol1.devicePath, "r+");
    const chunk = 4 << 20;
    for (let off = 0; off < SIZE; off += chunk) {
      const n = Math.min(chunk, SIZE - off);
      fs.writeSync(fd, crypto.randomBytes(n), 0, n, off);
    }
    fs.closeSync(fd);
  }
  const v2 = await check("create a volume with every field (size as a JSON integer)", { method: "POST", path: V(cidA), token,
    json: { name: "vol-2", size: 1 << 20, replicaCount: 2, sectorSize: 512, compression: true } }, 200, (r) => {
    const v = r.json.volume;
    return v.replicaCount === 2 && v.sectorSize === 512 && v.compression === true && v.size === String(1 << 20) ? null : `fields not kept: ${JSON.stringify(v)}`;
  });
  const vol2 = v2.json?.volume;
  await check("create a volume whose name is taken", { method: "POST", path: V(cidA), token, json: { name: "vol-1", size: "4096" } }, 409, expectCode(6));
  await check("create a volume without size", { method: "POST", path: V(cidA), token, json: { name: "vol-x" } }, 400);
  await check("create a volume of a size not a multiple of 4096", { method: "POST", path: V(cidA), token, json: { name: "vol-x", size: "1000" } }, 400);
  await check("create a volume with an unknown field", { method: "POST", path: V(cidA), token, json: { name: "vol-x", size: "4096", thin: true } }, 400);
  await check("create a volume with a wrong type", { method: "POST", path: V(cidA), token, json: { name: "vol-x", size: "4096", compression: "yes" } }, 400);
  await check("create a volume with replicaCount 5", { method: "POST", path: V(cidA), token, json: { name: "vol-x", size: "4096", replicaCount: 5 } }, 400);
  await check("create a volume with sectorSize 1024", { method: "POST", path: V(cidA), token, json: { name: "vol-x", size: "4096", sectorSize: 1024 } }, 400);
  await check("create a volume with a bad name", { method: "POST", path: V(cidA), token, json: { name: "bad/name", size: "4096" } }, 400);
  await check("create a volume with an empty body", { method: "POST", path: V(cidA), token }, 400);
  await check("create a volume from an unknown snapshot", { method: "POST", path: V(cidA), token, json: { name: "vol-x", size: "0", sourceSnapshotId: randomUuid() } }, 404);
  await check("create a volume in an unknown cluster", { method: "POST", path: V(randomUuid()), token, json: { name: "vol-x", size: "4096" } }, 404);
  await check("create a volume in a bad project name", { method: "POST", path: V(cidA, "bad%20project"), token, json: { name: "vol-x", size: "4096" } }, 400);

  await check("get a volume", { method: "GET", path: `${V(cidA)}/${vol1.id}`, token }, 200, (r) =>
    isDeepStrictEqual(r.json.volume, vol1) ? null : "differs from the created volume");
  await check("get an unknown volume", { method: "GET", path: `${V(cidA)}/${randomUuid()}`, token }, 404);
  await check("get a volume of an unknown cluster", { method: "GET", path: `${V(randomUuid())}/${vol1.id}`, token }, 404);
  await check("wrong method on a volume", { method: "PATCH", path: `${V(cidA)}/${vol1.id}`, token, json: {} }, 405);

  // ---- snapshots
  const s1 = await check("create a snapshot", { method: "POST", path: S(cidA), token, json: { name: "snap-1", sourceVolumeId: vol1.id, description: "first" } }, 200, (r) => {
    const s = r.json.snapshot;
    return s.sourceVolumeId === vol1.id && s.size === String(SIZE) && s.description === "first" && s.state === "Available" ? null : `unexpected snapshot ${JSON.stringify(s)}`;
  });
  const snap1 = s1.json?.snapshot;
  if (!snap1) return fail("cannot create a snapshot; nothing else can be checked");
  const s2 = await check("create a snapshot without description", { method: "POST", path: S(cidA), token, json: { name: "snap-2", sourceVolumeId: vol2?.id ?? vol1.id } }, 200,
    (r) => (r.json.snapshot.description === "" ? null : "description is not empty"));
  const snap2 = s2.json?.snapshot;
  await check("create a snapshot whose name is taken", { method: "POST", path: S(cidA), token, json: { name: "snap-1", sourceVolumeId: vol1.id } }, 409);
  await check("create a snapshot without sourceVolumeId", { method: "POST", path: S(cidA), token, json: { name: "snap-x" } }, 400);
  await check("create a snapshot of an unknown volume", { method: "POST", path: S(cidA), token, json: { name: "snap-x", sourceVolumeId: randomUuid() } }, 404);
  await check("create a snapshot with a long description", { method: "POST", path: S(cidA), token, json: { name: "snap-x", sourceVolumeId: vol1.id, description: "d".repeat(257) } }, 400);
  await check("create a snapshot with an unknown field", { method: "POST", path: S(cidA), token, json: { name: "snap-x", sourceVolumeId: vol1.id, size: "1" } }, 400);
  await check("create a snapshot with a wrong type", { method: "POST", path: S(cidA), token, json: { name: ["snap-x"], sourceVolumeId: vol1.id } }, 400);
  await check("create a snapshot in an unknown cluster", { method: "POST", path: S(randomUuid()), token, json: { name: "snap-x", sourceVolumeId: vol1.id } }, 404);
  await check("get a snapshot", { method: "GET", path: `${S(cidA)}/${snap1.id}`, token }, 200, (r) =>
    isDeepStrictEqual(r.json.snapshot, snap1) ? null : "differs from the created snapshot");
  await check("get an unknown snapshot", { method: "GET", path: `${S(cidA)}/${randomUuid()}`, token }, 404);
  await check("wrong method on snapshots", { method: "DELETE", path: S(cidA), token }, 405);

  const thin = await check("create a thin clone of a snapshot", { method: "POST", path: V(cidA), token, json: { name: "thin-1", size: "0", sourceSnapshotId: snap1.id } }, 200,
    (r) => (r.json.volume.sourceSnapshotId === snap1.id && r.json.volume.size === String(SIZE) ? null : "not a thin clone of snap-1"));
  await check("create a thin clone smaller than its snapshot", { method: "POST", path: V(cidA), token, json: { name: "thin-x", size: "4096", sourceSnapshotId: snap1.id } }, 400);

  // ---- thick clones
  const src = { snapId: snap1.id, projectName: P, clusterId: cidA };
  const TV = "/api/v1/volumes/thickclone", TS = "/api/v1/snapshots/thickclone";
  const tc1 = await check("thick-clone a snapshot into a volume on another cluster", { method: "POST", path: TV, token,
    json: { src, dst: { name: "thick-1", projectName: "p2", clusterId: cidB, replica: 2 }, verifyClone: true } }, 200);
  let thickVol;
  if (tc1.json?.workflowId) {
    const w = await waitWorkflow(token, tc1.json.workflowId, "thick clone volume");
    if (w?.state !== "COMPLETED") fail(`thick clone to a volume ended ${w?.state}: ${w?.msg}`);
    else if (!w.thickCloneVolumeRequest || !w.result.volumeId || !w.startedAt || !w.endedAt) fail(`thick clone workflow lacks fields: ${JSON.stringify(w)}`);
    else thickVol = w.result.volumeId;
  }
  if (thickVol)
    await check("get the thick clone", { method: "GET", path: `${V(cidB, "p2")}/${thickVol}`, token }, 200, (r) =>
      r.json.volume.name === "thick-1" && r.json.volume.replicaCount === 2 && r.json.volume.state === "Available" ? null : `unexpected ${JSON.stringify(r.json.volume)}`);
  const tc2 = await check("thick-clone a snapshot into a snapshot", { method: "POST", path: TS, token,
    json: { src, dst: { name: "thick-snap-1", clusterId: cidA, description: "a copy", size: String(SIZE) } } }, 200);
  let thickSnap;
  if (tc2.json?.workflowId) {
    const w = await waitWorkflow(token, tc2.json.workflowId, "thick clone snapshot");
    if (w?.state !== "COMPLETED" || !w.snapshotCloneRequest || !w.result.snapshotId) fail(`thick clone to a snapshot ended ${w?.state}: ${JSON.stringify(w)}`);
    else thickSnap = w.result.snapshotId;
  }
  await check("thick clone without src", { method: "POST", path: TV, token, json: { dst: { name: "x", clusterId: cidA } } }, 400);
  await check("thick clone with a non-UUID snapId", { method: "POST", path: TV, token, json: { src: { ...src, snapId: "snap-1" }, dst: { name: "x", clusterId: cidA } } }, 400);
  await check("thick clone with an unknown dst field", { method: "POST", path: TV, token, json: { src, dst: { name: "x", clusterId: cidA, pool: "a" } } }, 400,
    (r) => (/^dst\.pool/.test(r.json.message) ? null : `message does not name dst.pool: ${r.json.message}`));
  await check("thick clone with a wrong type", { method: "POST", path: TV, token, json: { src, dst: { name: "x", clusterId: cidA }, verifyClone: "yes" } }, 400);
  await check("thick clone smaller than the source", { method: "POST", path: TV, token, json: { src, dst: { name: "x", clusterId: cidA, size: "4096" } } }, 400);
  await check("thick clone into a volume with a description", { method: "POST", path: TV, token, json: { src, dst: { name: "x", clusterId: cidA, description: "d" } } }, 400);
  await check("thick clone with replica 4", { method: "POST", path: TS, token, json: { src, dst: { name: "x", clusterId: cidA, replica: 4 } } }, 400);
  await check("thick clone of an unknown snapshot", { method: "POST", path: TV, token, json: { src: { ...src, snapId: randomUuid() }, dst: { name: "x", clusterId: cidA } } }, 404);
  await check("thick clone to an unknown cluster", { method: "POST", path: TS, token, json: { src, dst: { name: "x", clusterId: randomUuid() } } }, 404);
  await check("thick clone with an unknown QoS policy", { method: "POST", path: TV, token, json: { src, dst: { name: "x", clusterId: cidA, qosPolicyName: "gold" } } }, 404);
  await check("thick clone onto a taken name", { method: "POST", path: TV, token, json: { src, dst: { name: "thick-1", projectName: "p2", clusterId: cidB } } }, 409, expectCode(6));
  await check("thick clone with the wrong method", { method: "GET", path: TV, token }, 405);

  // ---- listing with pagination
  async function walk(label, listPath, field, pageSize) {
    const all = await check(`${label}: one page`, { method: "GET", path: `${listPath}?pageSize=1000`, token }, 200,
      (r) => (r.json.nextPageToken === "" ? null : "nextPageToken is not empty on the only page"));
    const want = (all.json?.[field] ?? []).map((x) => x.id);
    const got = [];
    let tok = "";
    for (let page = 1; page < 100; page++) {
      const q = `pageSize=${pageSize}` + (tok ? `&nextPageToken=${encodeURIComponent(tok)}` : "");
      const r = await check(`${label}: page ${page} of ${pageSize}`, { method: "GET", path: `${listPath}?${q}`, token }, 200);
      if (!r.json) break;
      got.push(...r.json[field].map((x) => x.id));
      if (r.json[field].length > pageSize) fail(`${label}: page ${page} has ${r.json[field].length} items`);
      tok = r.json.nextPageToken;
      if (!tok) break;
    }
    if (!isDeepStrictEqual(got, want)) fail(`${label}: pages give ${got.length} items ${JSON.stringify(got)}, one page ${JSON.stringify(want)}`);
    else console.log(`ok   ${label}: ${want.length} items, the same in pages of ${pageSize}`);
    if (want.length <= pageSize) fail(`${label}: only ${want.length} items; pagination was not exercised`);
  }
  await walk("list volumes", V(cidA), "volumes", 1);
  await walk("list snapshots", S(cidA), "snapshots", 1);
  await walk("list workflows", "/api/v1/workflows", "workflows", 2);
  await check("list volumes of an empty project", { method: "GET", path: V(cidA, "empty"), token }, 200, (r) => (r.json.volumes.length === 0 ? null : "not empty"));
  await check("list volumes with pageSize=abc", { method: "GET", path: `${V(cidA)}?pageSize=abc`, token }, 400);
  await check("list volumes with pageSize=1001", { method: "GET", path: `${V(cidA)}?pageSize=1001`, token }, 400);
  await check("list volumes with a forged nextPageToken", { method: "GET", path: `${V(cidA)}?nextPageToken=garbage`, token }, 400);
  await check("list volumes with pageToken (not a parameter)", { method: "GET", path: `${V(cidA)}?pageToken=v1.1`, token }, 400);
  await check("list volumes with a bad project name", { method: "GET", path: V(cidA, "bad%20name"), token }, 400);
  await check("list volumes of an unknown cluster", { method: "GET", path: V(randomUuid()), token }, 404);
  await check("list snapshots with pageSize=-1", { method: "GET", path: `${S(cidA)}?pageSize=-1`, token }, 400);
  await check("list snapshots with a volume's page token", { method: "GET", path: `${S(cidA)}?nextPageToken=v1.1`, token }, 400);
  await check("list snapshots of an unknown cluster", { method: "GET", path: S(randomUuid()), token }, 404);
  await check("list instances (the embedded store has none)", { method: "GET", path: "/api/v1/instances", token }, 200, (r) =>
    r.json.instances.length === 0 && r.json.self === "" ? null : "instances on SQLite");
  await check("list instances with a parameter", { method: "GET", path: "/api/v1/instances?x=1", token }, 400);
  await check("list instances without a token", { method: "GET", path: "/api/v1/instances" }, 401);
  const W = "/api/v1/workflows";
  await check("list COMPLETED workflows", { method: "GET", path: `${W}?state=COMPLETED`, token }, 200, (r) =>
    r.json.workflows.length && r.json.workflows.every((w) => w.state === "COMPLETED") ? null : "filter by state not applied");
  // Four attaches above, and two of cluster C (made, then attached again without its metadata).
  await check("list ATTACH_CLUSTER workflows", { method: "GET", path: `${W}?type=ATTACH_CLUSTER&pageSize=10`, token }, 200, (r) =>
    r.json.workflows.length === 6 && r.json.workflows.every((w) => w.type === "ATTACH_CLUSTER") ? null : "filter by type not applied");
  await check("list FAILED workflows", { method: "GET", path: `${W}?state=FAILED`, token }, 200);
  await check("list workflows of an unknown type", { method: "GET", path: `${W}?type=NOPE`, token }, 200, (r) => (r.json.workflows.length === 0 ? null : "not empty"));
  await check("list workflows with a lower-case state", { method: "GET", path: `${W}?state=completed`, token }, 400);
  await check("list workflows with a type over 64 characters", { method: "GET", path: `${W}?type=${"T".repeat(65)}`, token }, 400);
  await check("list workflows with an unknown parameter", { method: "GET", path: `${W}?status=RUNNING`, token }, 400);
  await check("list workflows with a parameter given twice", { method: "GET", path: `${W}?pageSize=1&pageSize=2`, token }, 400);
  await check("list workflows with a forged token", { method: "GET", path: `${W}?nextPageToken=wf1.x`, token }, 400);
  await check("get an unknown workflow", { method: "GET", path: `${W}/${randomUuid()}`, token }, 404);
  await check("wrong method on a workflow", { method: "DELETE", path: `${W}/${randomUuid()}`, token }, 405);

  // ---- cancel
  await check("cancel a finished workflow", { method: "POST", path: `${W}/${attachA.json.workflowId}/cancel`, token }, 400, expectCode(9));
  await check("cancel an unknown workflow", { method: "POST", path: `${W}/${randomUuid()}/cancel`, token, json: {} }, 404);
  await check("cancel with an unknown field", { method: "POST", path: `${W}/${attachA.json.workflowId}/cancel`, token, json: { force: true } }, 400, expectCode(3));
  await check("cancel with the wrong method", { method: "GET", path: `${W}/${attachA.json.workflowId}/cancel`, token }, 405);

  // Long clones onto cluster B: while they run, B and the source snapshot are busy, and at
  // maxRunningWorkflows non-terminal workflows the next submission is 429.
  const live = [];
  for (let i = 0; i < args.maxRunning; i++) {
    const r = await check(`submit long clone ${i + 1} of ${args.maxRunning}`, { method: "POST", path: i % 2 ? TS : TV, token,
      json: { src, dst: { name: `busy-${i}`, clusterId: cidB }, verifyClone: true } }, 200);
    if (r.json?.workflowId) live.push(r.json.workflowId);
  }
  await check("submit one clone too many", { method: "POST", path: TV, token, json: { src, dst: { name: "busy-x", clusterId: cidB } } }, 429, expectCode(8));
  await check("refresh while the workflow limit is reached", { method: "POST", path: `${C}/refresh`, token, json: {} }, 429);
  await check("detach a cluster a running workflow uses", { method: "DELETE", path: `${C}/${cidB}`, token }, 400, expectCode(9));
  await check("delete the source snapshot of a running workflow", { method: "DELETE", path: `${S(cidA)}/${snap1.id}`, token }, 400, expectCode(9));
  await check("look at a running workflow", { method: "GET", path: `${W}/${live[0]}`, token }, 200, (r) =>
    TERMINAL.has(r.json.workflow.state) ? `already ${r.json.workflow.state}; the busy checks above raced with it` : null);
  await check("list RUNNING workflows", { method: "GET", path: `${W}?state=RUNNING`, token }, 200);
  for (const [i, id] of live.entries())
    await check(`cancel running clone ${i + 1}`, { method: "POST", path: `${W}/${id}/cancel`, token, ...(i % 2 ? { json: {} } : {}) }, 200);
  for (const id of live) {
    const w = await waitWorkflow(token, id, "cancelled clone");
    if (w && (w.state !== "CANCELLED" || !w.cancelRequested)) fail(`clone ${id} ended ${w.state} (cancelRequested ${w.cancelRequested}), expected CANCELLED`);
  }
  await check("list CANCELLED workflows", { method: "GET", path: `${W}?state=CANCELLED`, token }, 200, (r) =>
    r.json.workflows.length >= live.length ? null : "the cancelled clones are not listed");
  await check("a cancelled clone leaves no volume", { method: "GET", path: V(cidB), token }, 200, (r) =>
    r.json.volumes.some((v) => v.name.startsWith("busy-") || v.name.startsWith("dms-tmp-")) ? `left over: ${r.json.volumes.map((v) => v.name)}` : null);

  // ---- consistency groups and group snapshots
  const G = "/api/v1/consistency-groups", CG = "/api/v1/cg-snapshots";

  const g1 = await check("create a consistency group", { method: "POST", path: G, token,
    json: { name: "db", description: "orders", clusterId: cidA, projectName: P, volumeIds: [vol1.id, vol2?.id].filter(Boolean) } }, 200,
    (r) => (r.json.consistencyGroup.status === "available" && r.json.consistencyGroup.volumeIds.length === 2 ? null : "not available with 2 members"));
  const grp = g1.json?.consistencyGroup;
  await check("create a second, empty group", { method: "POST", path: G, token, json: { name: "spare", clusterId: cidA, projectName: P } }, 200);
  await check("create a group with a taken name", { method: "POST", path: G, token, json: { name: "db", clusterId: cidA, projectName: P } }, 409, expectCode(6));
  await check("create a group with a volume of another group", { method: "POST", path: G, token, json: { name: "db2", clusterId: cidA, projectName: P, volumeIds: [vol1.id] } }, 400, expectCode(9));
  await check("create a group without projectName", { method: "POST", path: G, token, json: { name: "x", clusterId: cidA } }, 400, expectCode(3));
  await check("create a group with a non-UUID volume", { method: "POST", path: G, token, json: { name: "x", clusterId: cidA, projectName: P, volumeIds: ["vol-1"] } }, 400, expectCode(3));
  await check("create a group with an unknown volume", { method: "POST", path: G, token, json: { name: "x", clusterId: cidA, projectName: P, volumeIds: [randomUuid()] } }, 404, expectCode(5));
  await check("create a group in an unknown cluster", { method: "POST", path: G, token, json: { name: "x", clusterId: randomUuid(), projectName: P } }, 404, expectCode(5));
  await check("create a group with an unknown field", { method: "POST", path: G, token, json: { name: "x", clusterId: cidA, projectName: P, shareTypes: [] } }, 400, expectCode(3));
  await walk("list consistency groups", G, "consistencyGroups", 1);
  if (grp) {
    const GI = `${G}/${grp.id}`;
    await check("get a consistency group", { method: "GET", path: GI, token }, 200, (r) => (isDeepStrictEqual(r.json.consistencyGroup, grp) ? null : "differs from the created group"));
    await check("get an unknown consistency group", { method: "GET", path: `${G}/${randomUuid()}`, token }, 404);
    await check("rename a consistency group", { method: "PUT", path: GI, token, json: { name: "db-main" } }, 200,
      (r) => (r.json.consistencyGroup.name === "db-main" && r.json.consistencyGroup.description === "orders" ? null : "not renamed"));
    await check("remove a volume that is not a member", { method: "PUT", path: GI, token, json: { removeVolumeIds: [randomUuid()] } }, 400, expectCode(3));
    await check("update a group with a wrong type", { method: "PUT", path: GI, token, json: { addVolumeIds: "x" } }, 400, expectCode(3));
    await check("update an unknown group", { method: "PUT", path: `${G}/${randomUuid()}`, token, json: {} }, 404);
    await check("delete a member volume", { method: "DELETE", path: `${V(cidA)}/${vol1.id}`, token }, 400, expectCode(9));
    await check("a group action with two actions", { method: "POST", path: `${GI}/action`, token, json: { resetStatus: { status: "error" }, forceDelete: {} } }, 400, expectCode(3));
    await check("reset a group's status to an unknown one", { method: "POST", path: `${GI}/action`, token, json: { resetStatus: { status: "migrating" } } }, 400, expectCode(3));
    await check("reset a group's status", { method: "POST", path: `${GI}/action`, token, json: { resetStatus: { status: "error" } } }, 200);
    await check("a group snapshot of a group in error", { method: "POST", path: CG, token, json: { consistencyGroupId: grp.id } }, 400, expectCode(9));
    await check("reset it back", { method: "POST", path: `${GI}/action`, token, json: { resetStatus: { status: "available" } } }, 200);
    await check("a group action on an unknown group", { method: "POST", path: `${G}/${randomUuid()}/action`, token, json: { forceDelete: {} } }, 404);
    const cs = await check("take a group snapshot", { method: "POST", path: CG, token, json: { consistencyGroupId: grp.id, name: "nightly" } }, 200,
      (r) => (r.json.cgSnapshot.status === "creating" && r.json.cgSnapshot.workflowId === r.json.workflowId ? null : "not creating with its workflow"));
    await check("take a group snapshot of an unknown group", { method: "POST", path: CG, token, json: { consistencyGroupId: randomUuid() } }, 404);
    await check("take a group snapshot without the group", { method: "POST", path: CG, token, json: { name: "x" } }, 400, expectCode(3));
    await check("take a group snapshot with a long name", { method: "POST", path: CG, token, json: { consistencyGroupId: grp.id, name: "n".repeat(129) } }, 400, expectCode(3));
    const cgs = cs.json?.cgSnapshot;
    if (cgs) {
      const w = await waitWorkflow(token, cs.json.workflowId, "group snapshot");
      if (w?.state !== "COMPLETED" || w.cgSnapshotRequest?.cgSnapshotId !== cgs.id || w.result.cgSnapshotId !== cgs.id) fail(`group snapshot workflow: ${JSON.stringify(w)}`);
      await check("take a group snapshot with a used name", { method: "POST", path: CG, token, json: { consistencyGroupId: grp.id, name: "nightly" } }, 409, expectCode(6));
      await check("get a group snapshot", { method: "GET", path: `${CG}/${cgs.id}`, token }, 200, (r) => (r.json.cgSnapshot.status === "available" ? null : `status ${r.json.cgSnapshot.status}`));
      await check("list a group snapshot's members", { method: "GET", path: `${CG}/${cgs.id}/members`, token }, 200,
        (r) => (r.json.members.length === 2 && r.json.members[0].volumeId === vol1.id ? null : `members ${JSON.stringify(r.json.members)}`));
      await check("list the group's snapshots", { method: "GET", path: `${CG}?consistencyGroupId=${grp.id}`, token }, 200, (r) => (r.json.cgSnapshots.length === 1 ? null : "not 1"));
      await check("list group snapshots with a bad group id", { method: "GET", path: `${CG}?consistencyGroupId=x`, token }, 400, expectCode(3));
      await check("list group snapshots", { method: "GET", path: `${CG}?pageSize=1`, token }, 200);
      await check("delete a group that has group snapshots", { method: "DELETE", path: GI, token }, 400, expectCode(9));
      const fromSnap = await check("make a group from the group snapshot", { method: "POST", path: G, token, json: { name: "db-copy", sourceCgSnapshotId: cgs.id } }, 200,
        (r) => (r.json.consistencyGroup.status === "creating" && r.json.consistencyGroup.workflowId ? null : "not creating with a workflow"));
      await check("make a group from a group snapshot and a cluster", { method: "POST", path: G, token, json: { name: "x", clusterId: cidA, sourceCgSnapshotId: cgs.id } }, 400, expectCode(3));
      await check("make a group from an unknown group snapshot", { method: "POST", path: G, token, json: { name: "x", sourceCgSnapshotId: randomUuid() } }, 404);
      const made = fromSnap.json?.consistencyGroup;
      if (made) {
        const w2 = await waitWorkflow(token, made.workflowId, "group from a group snapshot");
        if (w2?.state !== "COMPLETED" || w2.consistencyGroupRequest?.consistencyGroupId !== made.id) fail(`group from snapshot workflow: ${JSON.stringify(w2)}`);
        await check("the group made from the group snapshot", { method: "GET", path: `${G}/${made.id}`, token }, 200,
          (r) => (r.json.consistencyGroup.status === "available" && r.json.consistencyGroup.volumeIds.length === 2 ? null : `not available with 2 volumes: ${JSON.stringify(r.json)}`));
        await check("delete the group made from the group snapshot", { method: "DELETE", path: `${G}/${made.id}`, token }, 200);
      }
      // ---- thick clone of the group snapshot into a new group, on cluster B
      const tc = await check("thick clone the group snapshot into a new group", { method: "POST", path: `${G}/thickclone`, token,
        json: { src: { cgSnapshotId: cgs.id }, dst: { name: "db-thick", clusterId: cidB, projectName: "p3" }, verifyClone: true } }, 200,
        (r) => (r.json.consistencyGroup.status === "creating" && r.json.consistencyGroup.workflowId === r.json.workflowId ? null : "not creating with its workflow"));
      await check("thick clone a group snapshot without dst", { method: "POST", path: `${G}/thickclone`, token, json: { src: { cgSnapshotId: cgs.id } } }, 400, expectCode(3));
      await check("thick clone an unknown group snapshot", { method: "POST", path: `${G}/thickclone`, token, json: { src: { cgSnapshotId: randomUuid() }, dst: { name: "x" } } }, 404);
      await check("thick clone with an unknown field", { method: "POST", path: `${G}/thickclone`, token, json: { src: { cgSnapshotId: cgs.id }, dst: { name: "x", size: "1" } } }, 400, expectCode(3));
      if (tc.json?.workflowId) {
        const w3 = await waitWorkflow(token, tc.json.workflowId, "group thick clone");
        if (w3?.state !== "COMPLETED" || w3.groupThickCloneRequest?.cgSnapshotId !== cgs.id) fail(`group thick clone workflow: ${JSON.stringify(w3)}`);
        await check("the thick-cloned group", { method: "GET", path: `${G}/${tc.json.consistencyGroup.id}`, token }, 200,
          (r) => (r.json.consistencyGroup.status === "available" && r.json.consistencyGroup.volumeIds.length === 2 && r.json.consistencyGroup.clusterId === cidB ? null : `not available with 2 volumes on B: ${JSON.stringify(r.json)}`));
        await check("thick clone into a taken group name", { method: "POST", path: `${G}/thickclone`, token, json: { src: { cgSnapshotId: cgs.id }, dst: { name: "db-thick" } } }, 409, expectCode(6));
        await check("delete the thick-cloned group", { method: "DELETE", path: `${G}/${tc.json.consistencyGroup.id}`, token }, 200);
      }
      // ---- full copies of the group
      const FC = `${GI}/full-copies`;
      const fc = await check("full copies of the group on cluster B", { method: "POST", path: FC, token,
        json: { name: "fc", count: 1, clusterId: cidB, projectName: "copies" } }, 200,
        (r) => (r.json.workflows.length === 1 && r.json.copySet.copies[0].status === "creating" && r.json.copySet.copies[0].volumes.length === 2 ? null : `not one creating copy of 2 volumes: ${JSON.stringify(r.json)}`));
      await check("full copies with count 9", { method: "POST", path: FC, token, json: { name: "x", count: 9 } }, 400, expectCode(3));
      await check("full copies with volumeIds but not partial", { method: "POST", path: FC, token, json: { name: "x", volumeIds: [vol1.id] } }, 400, expectCode(3));
      await check("full copies with an unknown field", { method: "POST", path: FC, token, json: { name: "x", copyMode: "sync" } }, 400, expectCode(3));
      await check("full copies of an unknown group", { method: "POST", path: `${G}/${randomUuid()}/full-copies`, token, json: { name: "x" } }, 404);
      const set = fc.json?.copySet;
      if (set) {
        const fw = await waitWorkflow(token, fc.json.workflows[0].workflowId, "full copy");
        if (fw?.state !== "COMPLETED" || fw.fullCopyRequest?.copySetId !== set.id || fw.result.copySetId !== set.id) fail(`full copy workflow: ${JSON.stringify(fw)}`);
        await check("full copies with a taken name", { method: "POST", path: FC, token, json: { name: "fc" } }, 409, expectCode(6));
        const SI = `${FC}/${set.id}`;
        await check("get a copy set", { method: "GET", path: SI, token }, 200,
          (r) => (r.json.copySet.copies[0].status === "synchronized" && r.json.copySet.copies[0].cgSnapshotId ? null : `not synchronized: ${JSON.stringify(r.json)}`));
        await check("get an unknown copy set", { method: "GET", path: `${FC}/${randomUuid()}`, token }, 404);
        await check("list copy sets", { method: "GET", path: `${FC}?pageSize=1`, token }, 200, (r) => (r.json.copySets.length === 1 ? null : "not 1"));
        await check("list copy sets with a bad page size", { method: "GET", path: `${FC}?pageSize=x`, token }, 400, expectCode(3));
        await check("list copy sets of an unknown group", { method: "GET", path: `${G}/${randomUuid()}/full-copies`, token }, 404);
        await check("a copy set action with two actions", { method: "POST", path: `${SI}/action`, token, json: { detach: {}, activate: {} } }, 400, expectCode(3));
        await check("activate a synchronized copy", { method: "POST", path: `${SI}/action`, token, json: { activate: {} } }, 400, expectCode(9));
        await check("restore without confirm", { method: "POST", path: `${SI}/action`, token, json: { restore: {} } }, 400, expectCode(3));
        await check("an action on copy 2 of 1", { method: "POST", path: `${SI}/action`, token, json: { resynchronize: { copies: [2] } } }, 400, expectCode(3));
        const rs = await check("resynchronize the copies", { method: "POST", path: `${SI}/action`, token, json: { resynchronize: {} } }, 200,
          (r) => (r.json.workflows.length === 1 && r.json.copySet.copies[0].status === "synchronizing" ? null : `not synchronizing: ${JSON.stringify(r.json)}`));
        if (rs.json?.workflows?.[0]) {
          const rw = await waitWorkflow(token, rs.json.workflows[0].workflowId, "resynchronize");
          if (rw?.state !== "COMPLETED" || rw.type !== "RESYNCHRONIZE_FULL_COPY") fail(`resynchronize workflow: ${JSON.stringify(rw)}`);
        }
        const rr = await check("restore the sources from copy 1", { method: "POST", path: `${SI}/action`, token, json: { restore: { confirm: true, copies: [1] } } }, 200,
          (r) => (r.json.workflows.length === 1 && r.json.copySet.copies[0].status === "restoring" ? null : `not restoring: ${JSON.stringify(r.json)}`));
        if (rr.json?.workflows?.[0]) {
          const rw = await waitWorkflow(token, rr.json.workflows[0].workflowId, "restore");
          if (rw?.state !== "COMPLETED" || rw.type !== "RESTORE_FULL_COPY") fail(`restore workflow: ${JSON.stringify(rw)}`);
        }
        await check("delete a group with linked copies", { method: "DELETE", path: GI, token }, 400, expectCode(9));
        await check("detach the copies", { method: "POST", path: `${SI}/action`, token, json: { detach: {} } }, 200,
          (r) => (r.json.workflows.length === 0 && r.json.copySet.copies[0].status === "detached" ? null : `not detached: ${JSON.stringify(r.json)}`));
        await check("detach them again", { method: "POST", path: `${SI}/action`, token, json: { detach: {} } }, 400, expectCode(9));
      }
      const ina = await check("inactive partial full copies", { method: "POST", path: FC, token,
        json: { name: "cold", count: 2, partial: true, volumeIds: [vol2.id], createInactive: true } }, 200,
        (r) => (r.json.workflows.length === 2 && r.json.copySet.copies.every((c) => c.volumes.length === 1) ? null : `not 2 copies of 1 volume: ${JSON.stringify(r.json)}`));
      if (ina.json?.copySet) {
        for (const w of ina.json.workflows) await waitWorkflow(token, w.workflowId, "inactive copy");
        const SI = `${FC}/${ina.json.copySet.id}`;
        await check("the copies are inactive", { method: "GET", path: SI, token }, 200, (r) => (r.json.copySet.copies.every((c) => c.status === "inactive") ? null : "not inactive"));
        const act = await check("activate copy 2", { method: "POST", path: `${SI}/action`, token, json: { activate: { copies: [2] } } }, 200,
          (r) => (r.json.workflows.length === 1 && r.json.workflows[0].copy === 2 ? null : `not copy 2: ${JSON.stringify(r.json)}`));
        if (act.json?.workflows?.[0]) {
          const aw = await waitWorkflow(token, act.json.workflows[0].workflowId, "activate");
          if (aw?.state !== "COMPLETED" || aw.type !== "ACTIVATE_FULL_COPY") fail(`activate workflow: ${JSON.stringify(aw)}`);
        }
        await check("detach the inactive set", { method: "POST", path: `${SI}/action`, token, json: { detach: {} } }, 200);
      }
      await check("delete a group snapshot", { method: "DELETE", path: `${CG}/${cgs.id}`, token }, 200);
      await check("delete it again", { method: "DELETE", path: `${CG}/${cgs.id}`, token }, 404);
    }
    await check("get an unknown group snapshot", { method: "GET", path: `${CG}/${randomUuid()}`, token }, 404);
    await check("members of an unknown group snapshot", { method: "GET", path: `${CG}/${randomUuid()}/members`, token }, 404);
    await check("delete a consistency group", { method: "DELETE", path: GI, token }, 200);
    await check("delete it again", { method: "DELETE", path: GI, token }, 404);
  }
  const spare = await check("find the spare group", { method: "GET", path: G, token }, 200, (r) => (r.json.consistencyGroups.length === 1 ? null : "not 1 group"));
  const spareId = spare.json?.consistencyGroups?.[0]?.id;
  if (spareId) await check("force-delete a group", { method: "POST", path: `${G}/${spareId}/action`, token, json: { forceDelete: {} } }, 200);

  // ---- deletes and detach
  if (thin.json?.volume) {
    await check("delete a volume", { method: "DELETE", path: `${V(cidA)}/${thin.json.volume.id}`, token }, 200);
    await check("delete it again", { method: "DELETE", path: `${V(cidA)}/${thin.json.volume.id}`, token }, 404);
  }
  if (thickSnap) await check("delete a snapshot", { method: "DELETE", path: `${S(cidA)}/${thickSnap}`, token }, 200);
  if (snap2) await check("delete another snapshot", { method: "DELETE", path: `${S(cidA)}/${snap2.id}`, token }, 200);
  await check("delete an unknown snapshot", { method: "DELETE", path: `${S(cidA)}/${randomUuid()}`, token }, 404);
  await check("delete a volume of an unknown cluster", { method: "DELETE", path: `${V(randomUuid())}/${vol1.id}`, token }, 404);
  if (thickVol) await check("delete the thick clone", { method: "DELETE", path: `${V(cidB, "p2")}/${thickVol}`, token }, 200);
  await check("detach cluster B", { method: "DELETE", path: `${C}/${cidB}`, token }, 200);
  await check("detach it again", { method: "DELETE", path: `${C}/${cidB}`, token }, 404);
  await check("list volumes of a detached cluster", { method: "GET", path: V(cidB, "p2"), token }, 404);
  await check("detach cluster A", { method: "DELETE", path: `${C}/${cidA}`, token }, 200);
  await check("no cluster is left", { method: "GET", path: C, token }, 200, (r) => (r.json.clusters.length === 0 ? null : "clusters are left"));

  // ---- logout (last: it ends every session of the user)
  await check("log out with a body (ignored)", { method: "POST", path: "/api/v1/logout", token: token2, json: { everywhere: true } }, 200);
  await check("a logged-out token", { method: "GET", path: C, token: token2 }, 401);
  await check("log out with a logged-out token", { method: "POST", path: "/api/v1/logout", token }, 401);
}

// ------------------------------------------------------------------ summary

try {
  await main();
} catch (e) {
  fail(`check_responses.mjs threw: ${e.stack ?? e}`);
}

const minOps = args.minOperations ?? allOperations.length;
const notExercised = allOperations.filter((k) => !exercised.has(k));
const noSuccess = allOperations.filter((k) => exercised.has(k) && ![...exercised.get(k)].some((s) => s >= 200 && s < 300));
console.log("");
console.log("operations exercised (statuses seen / documented but not seen):");
for (const k of allOperations) {
  const seen = exercised.get(k);
  const [m, p] = k.split(" ");
  const documented = Object.keys(spec.paths[p][m.toLowerCase()].responses);
  const unseen = documented.filter((s) => !seen?.has(Number(s)));
  console.log(`  ${seen ? "   " : "NOT"} ${k}: ${seen ? [...seen].sort().join(" ") : "-"}${unseen.length ? `  (not seen: ${unseen.join(" ")})` : ""}`);
}
if (notExercised.length) console.log(`not exercised: ${notExercised.join(", ")}`);
if (noSuccess.length) console.log(`never answered 2xx: ${noSuccess.join(", ")}`);
const ops = allOperations.length - notExercised.length;
if (ops < minOps) {
  results.failed++;
  failures.push(`only ${ops} of ${allOperations.length} operations exercised, at least ${minOps} required`);
}
console.log("");
if (failures.length) {
  console.log("failures:");
  for (const f of failures) console.log(`  - ${f}`);
}
console.log(`${ops} of ${allOperations.length} operations exercised (at least ${minOps} required)`);
console.log(`check_responses: ${results.checks - results.failed} passed, ${results.failed} failed`);
process.exit(results.failed ? 1 : 0);
