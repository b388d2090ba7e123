import type { Readable, Writable } from 'node:stream';
import { enterLongStream, LONG_STREAM, noteStreamed } from './memory';

const storeErrors = new WeakSet<object>();

/**
 * The most bytes the tee gathers before it writes them on. TLS hands a body over in 16 KiB
 * records, ~65,000 'data' events a GiB; the records that arrive in one turn of the event loop
 * (one socket read can bring many) are written to the store and the client as one buffer of up
 * to 256 KiB, so the client's socket encrypts and sends them in one write and the body writer
 * takes them in one call (docs/decisions.md, "Record of a large body").
 */
export const COALESCE_BYTES = 256 * 1024;

/** Whether {@link teeToStore} failed because its store did (a full disk, git), not its source. */
export function isStoreError(e: unknown): boolean {
  // Not `instanceof Error`: an error made by Node's own fs or net code is of another realm's
  // Error under jest's VM contexts (jestjs/jest#2549), and the set tells by identity anyway.
  return typeof e === 'object' && e !== null && storeErrors.has(e);
}

/**
 * Copies `source` into `store` and, while it stays connected, into `client`, holding the
 * source back whenever either side is slow (backpressure, nothing piles up in memory).
 * A client that goes away does not stop the copy to `store`: the recording completes.
 * Resolves when the source has ended and `store` has been ended; rejects when the source
 * or the store fails (the client is then destroyed too).
 */
export function teeToStore(source: Readable, store: Writable, client: Writable | null): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let clientAlive = client !== null && !client.destroyed;
    let waiting = 0;
    let settled = false;
    let copied = 0;
    let leaveLongStream: (() => void) | undefined;

    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      if (flushAt) clearImmediate(flushAt);
      leaveLongStream?.();
      source.destroy();
      store.destroy(err);
      if (client && clientAlive) client.destroy(err);
      reject(err);
    };
    const resumeWhenDrained = () => {
      if (--waiting === 0) source.resume();
    };
    const dropClient = () => {
      if (!clientAlive) return;
      clientAlive = false;
      // If we were waiting for this client to drain, stop waiting.
      if (clientWaiting) {
        clientWaiting = false;
        resumeWhenDrained();
      }
    };
    let clientWaiting = false;
    // Chunks not yet written on, and the turn-end write that will take them.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let flushAt: NodeJS.Immediate | undefined;

    const flush = () => {
      if (flushAt) clearImmediate(flushAt);
      flushAt = undefined;
      if (settled || pendingBytes === 0) return;
      const chunk = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      const storeOk = store.write(chunk);
      let clientOk = true;
      if (client && clientAlive) clientOk = client.write(chunk);
      if (!storeOk) {
        waiting++;
        store.once('drain', resumeWhenDrained);
      }
      if (!clientOk) {
        waiting++;
        clientWaiting = true;
        client!.once('drain', () => {
          if (!clientWaiting) return;
          clientWaiting = false;
          resumeWhenDrained();
        });
      }
      if (waiting > 0) source.pause();
    };

    source.on('data', (chunk: Buffer) => {
      noteStreamed(chunk.length);
      copied += chunk.length;
      if (copied >= LONG_STREAM) leaveLongStream ??= enterLongStream();
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= COALESCE_BYTES) flush();
      else flushAt ??= setImmediate(flush);
    });
    source.once('end', () => {
      flush();
      if (client && clientAlive) client.end();
      // A store that fails after the last write may call back before its 'error' is emitted.
      store.end((err?: Error | null) => {
        if (err) return storeFailed(err);
        if (settled) return;
        settled = true;
        leaveLongStream?.();
        resolve();
      });
    });
    source.once('error', fail);
    source.once('aborted', () => fail(Object.assign(new Error('upstream closed the connection before the end of the body'), { code: 'ECONNRESET' })));
    const storeFailed = (e: Error) => {
      if (!settled) storeErrors.add(e);
      fail(e);
    };
    store.once('error', storeFailed);
    if (client) {
      client.once('close', dropClient);
      client.once('error', dropClient);
    }
  });
}
