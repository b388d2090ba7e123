/**
 * DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766): every message is preceded by
 * its length as two bytes, and a connection may carry many pipelined messages.
 */
import net from 'node:net';

/** Prefixes a DNS message with its 2-byte length for a TCP stream. */
export function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(msg.length + 2);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

/**
 * Calls `onMessage` for every length-prefixed message read from `socket`. Partial
 * messages wait for more bytes; nothing beyond one pending message is buffered, so a
 * peer sending a stream of junk cannot grow memory past 64 KiB.
 */
export function readFramedMessages(socket: net.Socket, onMessage: (msg: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 2) {
      const len = pending.readUInt16BE(0);
      if (pending.length < 2 + len) break;
      onMessage(pending.subarray(2, 2 + len));
      pending = pending.subarray(2 + len);
    }
  });
}

/**
 * Sends one query over a new TCP connection and resolves with the response whose
 * id matches, or rejects on error, close, timeout or abort.
 */
export function exchangeTcp(
  host: string,
  port: number,
  query: Buffer,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<Buffer> {
  const id = query.readUInt16BE(0);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const done = (err: Error | null, msg?: Buffer): void => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve(msg as Buffer);
    };
    const onAbort = (): void => done(new Error('aborted'));
    const timer = setTimeout(() => done(new Error(`no TCP answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    opts.signal?.addEventListener('abort', onAbort);
    socket.on('error', (e) => done(e));
    socket.on('close', () => done(new Error('connection closed before an answer')));
    socket.on('connect', () => socket.write(frame(query)));
    readFramedMessages(socket, (msg) => {
      if (msg.length >= 2 && msg.readUInt16BE(0) === id) done(null, msg);
    });
  });
}
