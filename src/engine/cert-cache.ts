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
 * A per-name cache of values that are costly to make (signed leaf certificates): one
 * production per name however many callers wait for it, expiry, a failed production
 * forgotten so the next caller retries, and the oldest names dropped past `maxEntries`.
 */
export class CertCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly produce: (name: string) => Promise<Expiring<T>>,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The value for `name`, produced at most once while it stays fresh. */
  get(name: string): Promise<T> {
    const hit = this.entries.get(name);
    if (hit && (!hit.settled || hit.settled.expiresAt > this.now())) return hit.promise.then((e) => e.value);
    const entry: Entry<T> = { promise: this.produce(name) };
    this.entries.set(name, entry);
    this.evict();
    entry.promise.then(
      (e) => (entry.settled = e),
      () => this.entries.get(name) === entry && this.entries.delete(name),
    );
    return entry.promise.then((e) => e.value);
  }

  /** The value for `name` if already produced and fresh; never starts a production. */
  peek(name: string): T | undefined {
    const settled = this.entries.get(name)?.settled;
    return settled && settled.expiresAt > this.now() ? settled.value : undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(): void {
    for (const key of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(key);
    }
  }
}
