// The WebAssembly client against a running echo-server, over real TCP:
//
//   WSPROTO_WASM=target/wasm32-unknown-unknown/release/wsproto_example_wasm.wasm \
//   ECHO_ADDR=127.0.0.1:8765 node --test examples/wasm/js/
//
// scripts/wasm-test.sh builds the module, starts the server and runs this.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import { Kind, WasmWebSocket, loadModule } from "./wsproto.mjs";

const wasmPath = process.env.WSPROTO_WASM;
const addr = process.env.ECHO_ADDR;

test("the wasm client talks to echo-server", { timeout: 60_000 }, async (t) => {
  assert.ok(wasmPath && addr, "set WSPROTO_WASM and ECHO_ADDR (scripts/wasm-test.sh does)");
  const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
  const wasm = await loadModule(wasmPath);
  const ws = await WasmWebSocket.connect(wasm, { host, port, path: "/" });
  assert.equal(ws.state, 1, "open after the handshake");

  await t.test("text with multi-byte UTF-8", async () => {
    const text = "héllo wörld — ✓ 🚀 日本語";
    ws.sendText(text);
    const echo = await ws.nextMessage();
    assert.equal(echo.kind, Kind.TEXT);
    assert.equal(echo.data, text);
  });

  await t.test("text over several fragments, split between characters", async () => {
    const text = "é✓🚀x".repeat(12_000); // 120,000 bytes of UTF-8
    ws.sendText(text);
    const echo = await ws.nextMessage();
    assert.equal(echo.kind, Kind.TEXT);
    assert.ok(echo.chunks > 1, "arrives in chunks");
    assert.equal(echo.data, text);
  });

  await t.test("binary", async () => {
    const small = new Uint8Array([0, 1, 2, 0xfe, 0xff]);
    ws.sendBinary(small);
    const echo = await ws.nextMessage();
    assert.equal(echo.kind, Kind.BINARY);
    assert.deepEqual(echo.data, small);

    const big = new Uint8Array(randomBytes(100_000));
    ws.sendBinary(big);
    const bigEcho = await ws.nextMessage();
    assert.equal(bigEcho.kind, Kind.BINARY);
    assert.equal(bigEcho.data.length, big.length);
    assert.deepEqual(bigEcho.data, big);
  });

  await t.test("ping", async () => {
    const payload = new TextEncoder().encode("are you there?");
    ws.ping(payload);
    const pong = await ws.next();
    assert.equal(pong.kind, Kind.PONG);
    assert.deepEqual(new Uint8Array(pong.data), payload);
  });

  await t.test("closing handshake", async () => {
    ws.close(1000, "done");
    assert.equal(ws.state, 3, "our close frame is out");
    const close = await ws.next();
    assert.equal(close.kind, Kind.CLOSE);
    assert.equal(close.code, 1000);
    assert.equal(close.data.toString("utf8"), "done");
    assert.equal(ws.state, 4, "closed");
    await ws.closed;
  });
});
