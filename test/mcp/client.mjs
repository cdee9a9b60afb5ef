#!/usr/bin/env node
// External acceptance check for `hearth mcp serve`: the official MCP
// TypeScript SDK client (@modelcontextprotocol/sdk 1.x, which none of us
// wrote) starts the server over stdio and drives the whole workflow on a
// real microVM: create (seeded) -> exec -> sync push -> diff -> export ->
// shell -> yield/command_wait -> delete, plus error cases. Every result's
// structuredContent is checked against the tool's outputSchema with Ajv
// (the client SDK checks it too). Exit status 0 means every check passed.
//
// Environment: HEARTH_BIN (the hearth binary, default "hearth"),
// HEARTH_HOME (state directory with the guest image), optional
// HEARTH_MCP_EXPECT (JSON list of {name, readOnly, destructive, idempotent}
// from the operation registry; the Go test sets it).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Ajv2020 } from "ajv/dist/2020.js";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const bin = process.env.HEARTH_BIN || "hearth";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-mcp-accept-"));
const serverLog = [];
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

const transport = new StdioClientTransport({
  command: bin,
  args: ["mcp", "serve", "--allow-path", tmp],
  env: { ...process.env },
  stderr: "pipe",
});
transport.stderr?.on("data", (d) => serverLog.push(d.toString()));
const client = new Client({ name: "hearth-acceptance", version: "1.0.0" });
const ajv = new Ajv2020({ strict: false });
const validators = {};
let workspace = null;
let checks = 0;
const ok = (msg) => { checks++; log("ok", msg); };

// call invokes a tool, expects success, validates structuredContent
// against the tool's outputSchema and returns it.
async function call(name, args, opts = {}) {
  const res = await client.callTool({ name, arguments: args }, undefined, { timeout: 600000, ...opts });
  if (res.isError) throw new Error(`${name} returned isError: ${res.content?.[0]?.text}`);
  assert.ok(res.structuredContent, `${name}: no structuredContent`);
  const v = validators[name];
  assert.ok(v(res.structuredContent), `${name}: structuredContent violates outputSchema: ${ajv.errorsText(v.errors)}`);
  const txt = res.content?.find((c) => c.type === "text")?.text ?? "";
  assert.ok(txt.length > 0, `${name}: no text summary`);
  assert.notEqual(txt, JSON.stringify(res.structuredContent), `${name}: text is the JSON again, not a summary`);
  return res.structuredContent;
}

async function callErr(name, args) {
  const res = await client.callTool({ name, arguments: args });
  assert.equal(res.isError, true, `${name}(${JSON.stringify(args)}) should be isError`);
  return res.content?.[0]?.text ?? "";
}

async function main() {
  await client.connect(transport);
  log("server:", JSON.stringify(client.getServerVersion()));

  // Tools, annotations and schemas.
  const { tools } = await client.listTools();
  const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
  for (const t of tools) {
    assert.ok(t.outputSchema, `${t.name}: no outputSchema`);
    assert.equal(t.inputSchema.type, "object", `${t.name}: inputSchema type`);
    validators[t.name] = ajv.compile(t.outputSchema);
    const a = t.annotations ?? {};
    assert.equal(a.openWorldHint, false, `${t.name}: openWorldHint must be false`);
    assert.equal(typeof a.destructiveHint, "boolean", `${t.name}: destructiveHint must be set`);
    assert.equal(typeof a.readOnlyHint, "boolean", `${t.name}: readOnlyHint must be set`);
    assert.ok(!JSON.stringify(t.inputSchema).includes('["null","array"]'), `${t.name}: nullable array in inputSchema`);
  }
  if (process.env.HEARTH_MCP_EXPECT) {
    const want = JSON.parse(process.env.HEARTH_MCP_EXPECT);
    assert.deepEqual(tools.map((t) => t.name).sort(), want.map((o) => o.name).sort(), "tool names differ from the registry");
    for (const o of want) {
      const a = byName[o.name].annotations;
      assert.deepEqual([a.readOnlyHint, a.destructiveHint, a.idempotentHint], [o.readOnly, o.destructive, o.idempotent], `${o.name}: annotations differ from the registry`);
    }
  }
  ok(`${tools.length} tools listed, annotations and schemas checked`);

  // Error cases: isError results, not protocol errors.
  let msg = await callErr("workspace_show", { workspace: "no-such-workspace" });
  assert.match(msg, /workspace_list/, "unknown workspace error should point to workspace_list");
  msg = await callErr("workspace_exec", { workspace: "no-such-workspace", command: "true", bogus: 1 });
  assert.match(msg, /bogus/);
  ok("unknown workspace and unknown argument give isError: " + JSON.stringify(msg.slice(0, 80)));

  // Create, seeded from a host directory, with progress.
  const seed = path.join(tmp, "seed");
  fs.mkdirSync(path.join(seed, "src"), { recursive: true });
  fs.writeFileSync(path.join(seed, "hello.txt"), "hello\n");
  fs.writeFileSync(path.join(seed, "src", "main.sh"), "#!/bin/sh\necho main\n", { mode: 0o755 });
  const progress = [];
  const ws = await call("workspace_create", { name: `mcp-accept-${process.pid}`, seed }, {
    onprogress: (p) => progress.push(p), resetTimeoutOnProgress: true,
  });
  workspace = ws.name;
  assert.equal(ws.state, "running");
  assert.ok(progress.length >= 1, "workspace_create sent no progress notification");
  ok(`workspace_create ${ws.name} (${ws.backend}/${ws.accel}); progress: ${progress.map((p) => p.message).join(" | ")}`);

  // Exec.
  let r = await call("workspace_exec", { workspace, argv: ["cat", "hello.txt"] });
  assert.equal(r.status, "finished");
  assert.equal(r.exit_code, 0);
  assert.equal(r.stdout, "hello\n");
  r = await call("workspace_exec", { workspace, command: "tr a-z A-Z; echo oops >&2; exit 3", stdin: "shout\n" });
  assert.deepEqual([r.exit_code, r.stdout, r.stderr], [3, "SHOUT\n", "oops\n"]);
  ok("workspace_exec argv, command, stdin, exit code");

  // Sync push newer host files, then diff against the baseline.
  const push = path.join(tmp, "push");
  fs.mkdirSync(push);
  fs.writeFileSync(path.join(push, "hello.txt"), "hello, world\n");
  fs.writeFileSync(path.join(push, "new.txt"), "brand new\n");
  const sp = await call("workspace_sync_push", { workspace, source: push });
  assert.ok(sp.sent >= 2, `sync push sent ${sp.sent}`);
  ok(`workspace_sync_push sent ${sp.sent} files`);
  const d = await call("workspace_diff", { workspace });
  const files = Object.fromEntries(d.files.map((f) => [f.path, f]));
  assert.equal(files["hello.txt"]?.status, "modified");
  assert.match(files["hello.txt"].patch, /\+hello, world/);
  assert.equal(files["new.txt"]?.status, "added");
  assert.ok(!files["src/main.sh"], "unchanged file in diff");
  ok(`workspace_diff: ${d.files.map((f) => `${f.status} ${f.path}`).join(", ")}`);

  // Export to the host.
  const out = path.join(tmp, "out");
  // Host paths outside --allow-path are refused, and nothing is written.
  const outside = path.join(os.tmpdir(), `hearth-mcp-outside-${process.pid}`);
  const refused = await callErr("workspace_export", { workspace, guest_path: "/workspace", host_dest: outside });
  assert.match(refused, /--allow-path/);
  assert.equal(fs.existsSync(outside), false, "an export outside the allowed roots wrote something");
  ok("workspace_export outside --allow-path refused, nothing written");
  const ex = await call("workspace_export", { workspace, guest_path: "/workspace", host_dest: out });
  assert.equal(fs.readFileSync(path.join(out, "hello.txt"), "utf8"), "hello, world\n");
  assert.equal(fs.readFileSync(path.join(out, "new.txt"), "utf8"), "brand new\n");
  ok(`workspace_export wrote ${ex.files} files to ${ex.host_path}`);

  // A persistent shell.
  const sh = await call("shell_open", { workspace });
  await call("shell_write", { workspace, shell_id: sh.id, data: "cd src && echo mcp-$((6*7))\n" });
  let seen = "";
  for (let i = 0; i < 20 && !seen.includes("mcp-42"); i++) {
    const o = await call("shell_read", { workspace, shell_id: sh.id, wait_ms: 2000, plain: true });
    seen += o.output;
  }
  assert.match(seen, /mcp-42/, `shell output: ${JSON.stringify(seen)}`);
  await call("shell_write", { workspace, shell_id: sh.id, data: "pwd\n" });
  seen = "";
  for (let i = 0; i < 20 && !seen.includes("/workspace/src"); i++) {
    seen += (await call("shell_read", { workspace, shell_id: sh.id, wait_ms: 2000, plain: true })).output;
  }
  assert.match(seen, /\/workspace\/src/, "shell lost its cwd between calls");
  const sl = await call("shell_list", { workspace });
  assert.ok(sl.shells.some((s) => s.id === sh.id));
  await call("shell_close", { workspace, shell_id: sh.id });
  ok(`shell_open/write/read/list/close (${sh.id}) kept its state between calls`);

  // A long command yields a handle instead of blocking.
  const t1 = Date.now();
  r = await call("workspace_exec", { workspace, command: "echo started; sleep 4; echo done", yield_ms: 500 });
  assert.equal(r.status, "running", `long command: ${JSON.stringify(r)}`);
  assert.ok(r.command_id, "no command_id");
  assert.ok(Date.now() - t1 < 4000, "yield_ms did not return early");
  const w = await call("command_wait", { workspace, command_id: r.command_id, timeout_ms: 30000 });
  assert.equal(w.status, "finished");
  assert.equal(w.exit_code, 0);
  const rd = await call("command_read", { workspace, command_id: r.command_id, stream: "stdout" });
  assert.equal(rd.data, "started\ndone\n");
  ok(`yield_ms=500 gave status running (${r.command_id}), command_wait finished, command_read ${JSON.stringify(rd.data)}`);

  // Large output is bounded in the result and pageable.
  r = await call("workspace_exec", { workspace, command: "head -c 100000 /dev/zero | tr '\\0' a" });
  assert.equal(r.stdout_truncated, true);
  assert.ok(r.stdout.length <= 32768, `stdout is ${r.stdout.length} bytes`);
  assert.match(r.stdout, /^a+$/, "the kept bytes are exact, with no marker in them");
  assert.equal(r.stdout_offset + r.stdout.length, 100000, "stdout_offset says where the kept end starts");
  assert.equal(r.stdout_bytes, 100000);
  ok(`100000-byte stdout bounded to its last ${r.stdout.length} bytes at offset ${r.stdout_offset}`);

  const del = await call("workspace_delete", { workspace, force: true });
  workspace = null;
  await callErr("workspace_show", { workspace: del.name });
  ok(`workspace_delete ${del.name}`);
}

let failed = false;
try {
  await main();
  log(`ALL ${checks} CHECKS PASSED`);
} catch (e) {
  failed = true;
  console.error("FAIL:", e?.stack || e);
  console.error("--- server stderr ---\n" + serverLog.join(""));
} finally {
  if (workspace) {
    try { await client.callTool({ name: "workspace_delete", arguments: { workspace, force: true } }); } catch {}
  }
  try { await client.close(); } catch {}
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
