/**
 * The SHA-256 (and the per-part tags, body-checks.ts) of a body being written, over exactly the
 * bytes its writer writes: on the main thread for a small body, on the hash worker
 * (hash-worker.ts) once the body passes {@link OFFLOAD_AT}. The first bytes are held until then
 * (the writers hold them anyway, in their probe or their file's buffer), so a small body never
 * reaches the worker: the small-file record keeps the memory it had without one (docs/decisions.md,
 * "Tried and taken back: the zstd and cache entry of a small body in a worker thread").
 */
import { createHash } from 'node:crypto';
import type { BodyTags, PartTagger } from './body-checks';
import { hashWorker, type RingSession } from './hash-worker';

/** A body that reaches this size is hashed off the main thread. */
export const OFFLOAD_AT = 1024 * 1024;

/** What a body's hashing ends with. */
export interface BodyDigest {
  sha256: string;
  /** The tags of its parts, when the writer was given checks. */
  tags?: BodyTags;
}

export class BodyHash {
  private held: Buffer[] | undefined = [];
  private heldBytes = 0;
  private size = 0;
  private local?: { hash: ReturnType<typeof createHash>; tagger?: PartTagger };
  private ring?: RingSession;

  /** @param offload whether this body may go to the worker once large (false: always on this thread) */
  constructor(
    private readonly tagger?: PartTagger,
    private readonly offload = true,
  ) {}

  update(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.ring) return this.ring.update(chunk);
    if (this.local) return this.hashHere(chunk);
    this.held!.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes >= OFFLOAD_AT) this.leaveHeld();
  }

  /** Resolves once the worker has room for what it was given (at once on this thread); rejects when the worker failed. */
  drained(): Promise<void> | undefined {
    return this.ring?.waiting ? this.ring.drained() : undefined;
  }

  /** The digest of every byte given, and the tags. Rejects when the worker failed or lost bytes. */
  async digest(): Promise<BodyDigest> {
    if (this.held) this.startHere();
    if (this.ring) {
      const d = await this.ring.digest();
      // The worker counted what it hashed: a ring that lost or repeated bytes fails the body.
      if (d.size !== this.size) throw new Error(`the hashing thread saw ${d.size} bytes of ${this.size}`);
      return d;
    }
    const { hash, tagger } = this.local!;
    return { sha256: hash.digest('hex'), ...(tagger ? { tags: tagger } : {}) };
  }

  /** Gives the worker's ring back (the body failed or was cancelled). */
  abort(): void {
    this.ring?.abort();
  }

  /** The held bytes go to the worker, or, when it has no ring free, are hashed here. */
  private leaveHeld(): void {
    const held = this.held!;
    this.held = undefined;
    this.ring = this.offload ? hashWorker().open(this.tagger?.secret()) : undefined;
    if (!this.ring) return this.startHere(held);
    for (const c of held) this.ring.update(c);
  }

  private startHere(held = this.held ?? []): void {
    this.held = undefined;
    this.local = { hash: createHash('sha256'), ...(this.tagger ? { tagger: this.tagger } : {}) };
    for (const c of held) this.hashHere(c);
  }

  private hashHere(chunk: Buffer): void {
    this.local!.hash.update(chunk);
    this.local!.tagger?.update(chunk);
  }
}
