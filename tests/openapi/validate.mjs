#!/usr/bin/env node
// Validates the OpenAPI document of the REST contract.
//
//   node validate.mjs SPEC [--routes FILE]
//       SPEC   docs/openapi.json
//       FILE   the routes the server serves, one "METHOD /path/{param}" per line ('#' comments and
//              blank lines are ignored). Every route must be documented, and every documented
//              operation must be in the list.
//   node validate.mjs --print-router-routes SRC_HTTP_DIR
//       Prints the routes src/http (router.cpp, routes/*.cpp) registers, in the --routes format, and fails when an
//       add(...) call cannot be understood (so a new way of registering routes is never skipped).
//
// Besides SwaggerParser.validate() (OpenAPI 3.0 schema and $ref checks), it checks what the
// parser does not: unique operationIds, a 2xx answer and an `application/json` or `text/plain`
// body for every operation, and the file's formatting (2-space JSON, final newline).
// Exits 0 when everything holds, 1 with the reasons otherwise, 2 on bad usage.

import fs from "node:fs";
import path from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function usage(msg) {
  if (msg) console.error(`validate.mjs: ${msg}`);
  console.error("usage: node validate.mjs SPEC [--routes FILE]\n       node validate.mjs --print-router-routes ROUTER_CPP");
  process.exit(2);
}

// ---- routes of router.cpp ----

// Splits the text of a call's arguments at top-level commas.
function splitArgs(text) {
  const out = [];
  let depth = 0, cur = "", inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      cur += c;
      if (c === "\\") { cur += text[++i]; continue; }
      if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') { inStr = true; cur += c; continue; }
    if ("([{".includes(c)) depth++;
    if (")]}".includes(c)) depth--;
    if (c === "," && depth === 0) { out.push(cur.trim()); cur = ""; continue; }
    cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

// The text of the call's argument list that starts at `open` (the index of '(').
function callArgs(src, open) {
  let depth = 0, inStr = false, inChar = false;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (inStr) { if (c === "\\") i++; else if (c === '"') inStr = false; continue; }
    if (inChar) { if (c === "\\") i++; else if (c === "'") inChar = false; continue; }
    if (c === '"') inStr = true;
    else if (c === "'") inChar = true;
    else if (c === "(") depth++;
    else if (c === ")" && --depth === 0) return src.slice(open + 1, i);
  }
  throw new Error("unbalanced parentheses after offset " + open);
}

// Every value a route expression can take: string literals, `const std::string` variables,
// `a + b` and `cond ? a : b`. Throws for anything else.
function evaluate(expr, vars) {
  expr = expr.trim();
  const q = topLevel(expr, "?");
  if (q >= 0) {
    const rest = expr.slice(q + 1);
    const colon = topLevel(rest, ":");
    if (colon < 0) throw new Error(`cannot evaluate route expression: ${expr}`);
    return [...evaluate(rest.slice(0, colon), vars), ...evaluate(rest.slice(colon + 1), vars)];
  }
  const plus = topLevel(expr, "+");
  if (plus >= 0) {
    const left = evaluate(expr.slice(0, plus), vars), right = evaluate(expr.slice(plus + 1), vars);
    return left.flatMap((l) => right.map((r) => l + r));
  }
  let m = /^"((?:[^"\\]|\\.)*)"$/.exec(expr);
  if (m) return [m[1]];
  m = /^std::string\(\s*(.*)\s*\)$/.exec(expr);
  if (m) return evaluate(m[1], vars);
  if (/^[A-Za-z_]\w*$/.test(expr) && vars.has(expr)) return [vars.get(expr)];
  throw new Error(`cannot evaluate route expression: ${expr}`);
}

function topLevel(expr, ch) {
  let inStr = false, depth = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (inStr) { if (c === "\\") i++; else if (c === '"') inStr = false; continue; }
    if (c === '"') inStr = true;
    else if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) depth--;
    else if (c === ch && depth === 0 && !(ch === ":" && expr[i + 1] === ":") && !(ch === ":" && expr[i - 1] === ":"))
      return i;
  }
  return -1;
}

// The routes the sources under `dir` (src/http: router.cpp and routes/*.cpp) register.
export function routerRoutes(dir) {
  const files = fs.statSync(dir).isDirectory()
    ? fs.readdirSync(dir, { recursive: true }).filter((f) => f.endsWith(".cpp")).map((f) => path.join(dir, f))
    : [dir];
  const all = files.flatMap((f) => routesOfFile(f));
  if (all.length < 5) throw new Error(`only ${all.length} routes found in ${dir}; is this src/http?`);
  return [...new Set(all)].sort();
}

function routesOfFile(file) {
  const raw = fs.readFileSync(file, "utf8");
  // Comments out, strings kept.
  const src = raw.replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (m) => (m.startsWith("//") ? "" : " "));
  const vars = new Map();
  for (const m of src.matchAll(/const\s+std::string\s+([A-Za-z_]\w*)\s*=\s*("(?:[^"\\]|\\.)*")\s*;/g))
    vars.set(m[1], evaluate(m[2], vars)[0]);
  const routes = [];
  const calls = [...src.matchAll(/(?<![\w.>:])add\s*\(/g)];
  for (const m of calls) {
    const open = m.index + m[0].length - 1;
    const before = src.slice(Math.max(0, m.index - 16), m.index);
    if (/void\s+$/.test(before)) continue; // the definition of add()
    const args = splitArgs(callArgs(src, open));
    if (args.length < 3) throw new Error(`add(...) with ${args.length} arguments: ${args.join(", ")}`);
    const methods = evaluate(args[0], vars);
    const patterns = evaluate(args[1], vars);
    for (const method of methods) {
      if (!/^[A-Z]+$/.test(method)) throw new Error(`add(...) with method ${JSON.stringify(method)}`);
      for (const p of patterns) {
        if (!p.startsWith("/")) throw new Error(`add(...) with path ${JSON.stringify(p)}`);
        routes.push(`${method} ${p}`);
      }
    }
  }
  return routes;
}

function readRoutes(file) {
  const out = [];
  fs.readFileSync(file, "utf8").split("\n").forEach((line, i) => {
    line = line.replace(/#.*/, "").trim();
    if (!line) return;
    const m = /^([A-Za-z]+)\s+(\/\S*)$/.exec(line);
    if (!m) throw new Error(`${file}:${i + 1}: expected "METHOD /path", got ${JSON.stringify(line)}`);
    out.push(`${m[1].toUpperCase()} ${m[2]}`);
  });
  return out;
}

// ---- main ----

const argv = process.argv.slice(2);
if (argv[0] === "--print-router-routes") {
  if (argv.length !== 2) usage();
  try {
    for (const r of routerRoutes(argv[1])) console.log(r);
  } catch (e) {
    console.error(`validate.mjs: ${argv[1]}: ${e.message}`);
    process.exit(1);
  }
  process.exit(0);
}

let specPath = null, routesFile = null;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--routes") routesFile = argv[++i] ?? usage("--routes needs a file");
  else if (argv[i].startsWith("--")) usage(`unknown option ${argv[i]}`);
  else if (!specPath) specPath = argv[i];
  else usage(`unexpected argument ${argv[i]}`);
}
if (!specPath) usage("no SPEC given");

const problems = [];
let text;
try {
  text = fs.readFileSync(specPath, "utf8");
} catch (e) {
  console.error(`validate.mjs: ${e.message}`);
  process.exit(1);
}
let doc;
try {
  doc = JSON.parse(text);
} catch (e) {
  console.error(`validate.mjs: ${specPath}: not JSON: ${e.message}`);
  process.exit(1);
}

try {
  // validate() dereferences the object it is given: hand it a copy.
  await SwaggerParser.validate(structuredClone(doc));
  console.log(`ok: ${specPath} is a valid OpenAPI ${doc.openapi} document (swagger-parser)`);
} catch (e) {
  problems.push(`swagger-parser: ${e.message}`);
}

if (!/^3\.0\.\d+$/.test(String(doc.openapi))) problems.push(`openapi is ${doc.openapi}, expected 3.0.x`);
if (JSON.stringify(doc, null, 2) + "\n" !== text)
  problems.push("formatting: the file is not JSON with 2-space indentation and a final newline");

const documented = [];
const opIds = new Map();
for (const [p, item] of Object.entries(doc.paths ?? {})) {
  for (const m of METHODS) {
    const op = item[m];
    if (!op) continue;
    const name = `${m.toUpperCase()} ${p}`;
    documented.push(name);
    if (!op.operationId) problems.push(`${name}: no operationId`);
    else if (opIds.has(op.operationId)) problems.push(`${name}: operationId ${op.operationId} also used by ${opIds.get(op.operationId)}`);
    else opIds.set(op.operationId, name);
    const codes = Object.keys(op.responses ?? {});
    if (!codes.some((c) => /^[23]\d\d$/.test(c))) problems.push(`${name}: no 2xx or 3xx response`);
    for (const c of codes) {
      if (!/^[1-5]\d\d$/.test(c)) problems.push(`${name}: response key ${c} is not an explicit status code`);
    }
  }
}
console.log(`ok: ${documented.length} operations documented`);

if (routesFile) {
  let served;
  try {
    served = readRoutes(routesFile);
  } catch (e) {
    console.error(`validate.mjs: ${e.message}`);
    process.exit(1);
  }
  const doc_ = new Set(documented), srv = new Set(served);
  const missing = served.filter((r) => !doc_.has(r));
  const extra = documented.filter((r) => !srv.has(r));
  for (const r of missing) problems.push(`route served but not documented: ${r}`);
  for (const r of extra) problems.push(`route documented but not in ${routesFile}: ${r}`);
  if (!missing.length && !extra.length)
    console.log(`ok: the ${served.length} routes of ${routesFile} are exactly the documented operations`);
}

if (problems.length) {
  for (const p of problems) console.error(`FAIL: ${p}`);
  console.error(`validate.mjs: ${problems.length} problem(s) in ${specPath}`);
  process.exit(1);
}
console.log("validate.mjs: all checks passed");
