// A WebSocket client for Node: the socket is Node's, the protocol is the
// wsproto WebAssembly module (see ../src/lib.rs for its ABI and call order).

import { webcrypto } from "node:crypto";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import net from "node:net";

/** What `wsp_poll` returns for an event. */
export const Kind = Object.freeze({
  ACCEPT: 1,
  REJECT: 2,
  TEXT: 3,
  BINARY: 4,
  PING: 5,
  PONG: 6,
  CLOSE: 7,
});

const ERRORS = new Map([
  [-1, "not possible in this state"],
  [-2, "too few random bytes"],
  [-3, "output area full"],
  [-4, "bad argument"],
  [-5, "the server broke the protocol"],
  [-6, "module busy"],
]);

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Instantiate the module at `path`; it imports nothing. */
export async function loadModule(path) {
  const { instance } = await WebAssembly.instantiate(await readFile(path), {});
  return instance.exports;
}

/** One WebSocket connection over TCP, driven through the module. */
export class WasmWebSocket {
  #wasm;
  #socket;
  #events = [];
  #waiters = [];
  #failure = null;
  #ended = false;

  constructor(wasm, socket) {
    this.#wasm = wasm;
    this.#socket = socket;
    /** Resolves when the TCP connection is closed. */
    this.closed = once(socket, "close");
    socket.on("data", (chunk) => this.#onData(chunk));
    socket.on("end", () => this.#onEnd());
    socket.on("error", (err) => this.#fail(err));
  }

  /** Open a TCP connection to `host:port` and run the opening handshake. */
  static async connect(wasm, { host, port, path = "/" }) {
    const socket = net.connect({ host, port });
    await once(socket, "connect");
    const ws = new WasmWebSocket(wasm, socket);
    const hostBytes = encoder.encode(`${host}:${port}`);
    const pathBytes = encoder.encode(path);
    const area = ws.#view(wasm.wsp_send_area(), hostBytes.length + pathBytes.length);
    area.set(hostBytes);
    area.set(pathBytes, hostBytes.length);
    ws.#refill();
    ws.#check(wasm.wsp_connect(hostBytes.length, pathBytes.length));
    ws.#flush();
    const answer = await ws.next();
    if (answer.kind !== Kind.ACCEPT) {
      socket.destroy();
      throw new Error(`handshake refused with status ${answer.code}`);
    }
    return ws;
  }

  /** The module's state: 0 connecting, 1 open, 2 and 3 closing, 4 closed. */
  get state() {
    return this.#wasm.wsp_state();
  }

  /** Send a text message, in fragments that each hold whole characters. */
  sendText(text) {
    const bytes = encoder.encode(text);
    const capacity = this.#wasm.wsp_send_capacity();
    let start = 0;
    do {
      let end = Math.min(start + capacity, bytes.length);
      // Back up to the start of a character (never before `start`).
      while (end < bytes.length && end > start && (bytes[end] & 0xc0) === 0x80) {
        end -= 1;
      }
      this.#sendChunk(bytes.subarray(start, end), end === bytes.length, this.#wasm.wsp_send_text);
      start = end;
    } while (start < bytes.length);
  }

  /** Send a binary message, in fragments of at most the send area. */
  sendBinary(bytes) {
    const capacity = this.#wasm.wsp_send_capacity();
    let start = 0;
    do {
      const end = Math.min(start + capacity, bytes.length);
      this.#sendChunk(bytes.subarray(start, end), end === bytes.length, this.#wasm.wsp_send_binary);
      start = end;
    } while (start < bytes.length);
  }

  /** Send a ping with `payload` (at most 125 bytes). */
  ping(payload) {
    this.#write(payload);
    this.#refill();
    this.#check(this.#wasm.wsp_send_ping(payload.length));
    this.#flush();
  }

  /** Start the closing handshake. */
  close(code = 1000, reason = "") {
    const bytes = encoder.encode(reason);
    this.#write(bytes);
    this.#refill();
    this.#check(this.#wasm.wsp_send_close(code, bytes.length));
    this.#flush();
  }

  /**
   * The next event: `{ kind, data, finished, code }`, where `data` is a copy
   * of the event's bytes. Rejects when the connection failed, or after
   * `timeoutMs`.
   */
  next(timeoutMs = 10_000) {
    if (this.#events.length > 0) {
      return Promise.resolve(this.#events.shift());
    }
    if (this.#failure !== null) {
      return Promise.reject(this.#failure);
    }
    if (this.#ended) {
      return Promise.reject(new Error("the connection ended"));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== resolve);
        reject(new Error(`no event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push({
        resolve: (event) => (clearTimeout(timer), resolve(event)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      });
    });
  }

  /**
   * The next message or control event, with the chunks of a message joined:
   * `{ kind, data }` (a string for text), `{ kind, data, code }` for close.
   */
  async nextMessage(timeoutMs = 10_000) {
    const first = await this.next(timeoutMs);
    if (first.kind !== Kind.TEXT && first.kind !== Kind.BINARY) {
      return first;
    }
    const chunks = [first.data];
    let last = first;
    while (!last.finished) {
      last = await this.next(timeoutMs);
      if (last.kind !== first.kind) {
        throw new Error(`event ${last.kind} in the middle of a message`);
      }
      chunks.push(last.data);
    }
    const data = Buffer.concat(chunks);
    return first.kind === Kind.TEXT
      ? { kind: Kind.TEXT, data: decoder.decode(data), chunks: chunks.length }
      : { kind: Kind.BINARY, data: new Uint8Array(data), chunks: chunks.length };
  }

  #sendChunk(chunk, finished, send) {
    this.#write(chunk);
    this.#refill();
    this.#check(send(chunk.length, finished ? 1 : 0));
    this.#flush();
  }

  #onData(chunk) {
    let offset = 0;
    while (offset < chunk.length && this.#failure === null) {
      const space = this.#wasm.wsp_input_space();
      if (space === 0) {
        this.#fail(new Error("the receive buffer is full"));
        return;
      }
      const n = Math.min(space, chunk.length - offset);
      this.#view(this.#wasm.wsp_input_area(), n).set(chunk.subarray(offset, offset + n));
      this.#wasm.wsp_feed(n);
      offset += n;
      this.#poll();
    }
  }

  #poll() {
    for (;;) {
      this.#refill();
      const kind = this.#wasm.wsp_poll();
      // A pong or a close reply may be queued.
      this.#flush();
      if (kind === 0) {
        return;
      }
      if (kind < 0) {
        const code = this.#wasm.wsp_event_code();
        this.#fail(new Error(`wsproto: ${ERRORS.get(kind) ?? kind} (close code ${code})`));
        this.#socket.destroy();
        return;
      }
      this.#deliver(this.#event(kind));
    }
  }

  #onEnd() {
    this.#ended = true;
    const kind = this.#wasm.wsp_eof();
    if (kind > 0) {
      this.#deliver(this.#event(kind));
    }
    this.#socket.end();
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new Error("the connection ended"));
    }
  }

  #event(kind) {
    const wasm = this.#wasm;
    return {
      kind,
      data: Buffer.from(this.#view(wasm.wsp_event_area(), wasm.wsp_event_len())),
      finished: wasm.wsp_event_finished() !== 0,
      code: wasm.wsp_event_code(),
    };
  }

  #deliver(event) {
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve(event);
    } else {
      this.#events.push(event);
    }
  }

  #fail(err) {
    if (this.#failure === null) {
      this.#failure = err;
    }
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(err);
    }
  }

  /** Top the random pool up from the system's generator when it runs low. */
  #refill() {
    const wasm = this.#wasm;
    if (wasm.wsp_random_available() < 64) {
      const capacity = wasm.wsp_random_capacity();
      webcrypto.getRandomValues(this.#view(wasm.wsp_random_area(), capacity));
      wasm.wsp_random_added(capacity);
    }
  }

  #flush() {
    const wasm = this.#wasm;
    const len = wasm.wsp_output_len();
    if (len > 0) {
      this.#socket.write(Buffer.from(this.#view(wasm.wsp_output_area(), len)));
      wasm.wsp_output_clear();
    }
  }

  #write(bytes) {
    if (bytes.length > this.#wasm.wsp_send_capacity()) {
      throw new RangeError("larger than the send area");
    }
    this.#view(this.#wasm.wsp_send_area(), bytes.length).set(bytes);
  }

  #check(result) {
    if (result < 0) {
      throw new Error(`wsproto: ${ERRORS.get(result) ?? result}`);
    }
    return result;
  }

  /** A view of `len` bytes of the module's memory at `address`. */
  #view(address, len) {
    return new Uint8Array(this.#wasm.memory.buffer, address >>> 0, len);
  }
}
