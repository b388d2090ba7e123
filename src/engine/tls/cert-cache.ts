import { LRUCache } from 'lru-cache';

/** What a cache producer returns: the value and when it stops being servable. */
export interface Expiring<T> {
  value: T;
  expiresAt: number;
}

interface Entry<T> {
  promise: Promise<Expiring<T>>;
  settled?: Expiring<T>;
}

/**
 * A per-name cache of values that are costly to make (signed leaf certificates and their TLS
 * contexts): one production per name however many callers wait for it, expiry, a failed
 * production forgotten so the next caller retries, and past `maxEntries` the name used least
 * recently dropped (lru-cache), so a build that talks to many hosts keeps the ones it uses most
 * instead of re-signing them in the order they first came.
 */
export class CertCache<T> {
  private readonly entries: LRUCache<string, Entry<T>>;

  constructor(
    private readonly produce: (name: string) => Promise<Expiring<T>>,
    maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    this.entries = new LRUCache({ max: maxEntries });
  }

  /** The value for `name`, produced at most once while it stays fresh. */
  get(name: string): Promise<T> {
    const hit = this.entries.get(name);
    if (hit && (!hit.settled || hit.settled.expiresAt > this.now())) return hit.promise.then((e) => e.value);
    const entry: Entry<T> = { promise: this.produce(name) };
    this.entries.set(name, entry);
    entry.promise.then(
      (e) => (entry.settled = e),
      () => this.entries.peek(name) === entry && this.entries.delete(name),
    );
    return entry.promise.then((e) => e.value);
  }

  /** The value for `name` if already produced and fresh (a use, for recency); never starts a production. */
  peek(name: string): T | undefined {
    const settled = this.entries.get(name)?.settled;
    return settled && settled.expiresAt > this.now() ? settled.value : undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}
