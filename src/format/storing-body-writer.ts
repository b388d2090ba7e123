/**
 * What both body writers share (git parts in body-writer.ts, Git LFS objects in
 * lfs-body-writer.ts): `done` settles once the body is stored or the write has failed, an
 * aborted signal destroys the writer, `_final` stores the body with the writer's own `finish()`,
 * and a writer destroyed after storing its body has nothing to undo.
 */
import { Writable } from 'node:stream';
import { BtrflyError } from '../errors';
import type { BodyLocation, BodyWriter, StoredBody } from './types';

export abstract class StoringBodyWriter extends Writable implements BodyWriter {
  readonly done: Promise<StoredBody>;
  location?: BodyLocation;
  private settle!: { resolve: (b: StoredBody) => void; reject: (e: Error) => void };
  /** Set once the body is wholly stored: its temp files are gone or in place. */
  protected stored = false;

  constructor(highWaterMark: number, signal?: AbortSignal) {
    super({ highWaterMark });
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // Callers that only watch stream errors must not get an unhandled rejection too.
    this.done.catch(() => undefined);
    if (signal) {
      const onAbort = (): void => {
        this.destroy(new BtrflyError('STORAGE', 'body write aborted', { cause: signal.reason }));
      };
      if (signal.aborted) queueMicrotask(onAbort);
      else signal.addEventListener('abort', onAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }

  /** Stores what was written, after `end()`; `done` resolves with what it returns. */
  protected abstract finish(): Promise<StoredBody>;

  override _final(cb: (e?: Error | null) => void): void {
    this.finish().then((stored) => {
      this.stored = true;
      this.settle.resolve(stored);
      cb();
    }, cb);
  }

  /**
   * For `_destroy`: whether anything is left to undo. Not for a writer that stored its body (it
   * is destroyed too, by autoDestroy); otherwise `done` rejects with the failure, or with a
   * cancelled write when there is none.
   */
  protected failed(err: Error | null): boolean {
    if (!err && this.stored) return false;
    this.settle.reject(err ?? new BtrflyError('STORAGE', 'body write was cancelled before it ended'));
    return true;
  }
}
