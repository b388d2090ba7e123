import type { Readable, Writable } from 'node:stream';
import { enterLongStream, LONG_STREAM, noteStreamed } from './memory';

const storeErrors = new WeakSet<object>();

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

    source.on('data', (chunk: Buffer) => {
      noteStreamed(chunk.length);
      copied += chunk.length;
      if (copied >= LONG_STREAM) leaveLongStream ??= enterLongStream();
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
    });
    source.once('end', () => {
      if (client && clientAlive) client.end();
      store.end(() => {
        if (settled) return;
        settled = true;
        leaveLongStream?.();
        resolve();
      });
    });
    source.once('error', fail);
    source.once('aborted', () => fail(Object.assign(new Error('upstream closed the connection before the end of the body'), { code: 'ECONNRESET' })));
    store.once('error', (e: Error) => {
      if (!settled) storeErrors.add(e);
      fail(e);
    });
    if (client) {
      client.once('close', dropClient);
      client.once('error', dropClient);
    }
  });
}
