import { CertCache } from '../../src/engine/tls/cert-cache';

/** A producer that counts how often each name was made. */
function counting(): { made: string[]; produce: (name: string) => Promise<{ value: string; expiresAt: number }> } {
  const made: string[] = [];
  return { made, produce: async (name) => (made.push(name), { value: `ctx:${name}`, expiresAt: Date.now() + 60_000 }) };
}

describe('CertCache', () => {
  it('drops the name used least recently, not the one made first', async () => {
    const { made, produce } = counting();
    const cache = new CertCache(produce, 2);
    await cache.get('a.test');
    await cache.get('b.test');
    expect(cache.peek('a.test')).toBe('ctx:a.test'); // a use: a is now the most recent
    await cache.get('c.test'); // over the limit: b goes
    expect(cache.size).toBe(2);
    await cache.get('a.test');
    expect(made).toEqual(['a.test', 'b.test', 'c.test']);
    await cache.get('b.test');
    expect(made).toEqual(['a.test', 'b.test', 'c.test', 'b.test']);
  });

  it('shares one production between concurrent callers and forgets a failed one', async () => {
    let calls = 0;
    const cache = new CertCache(async (name: string) => {
      calls++;
      if (calls === 1) throw new Error(`cannot sign ${name}`);
      return { value: name, expiresAt: Date.now() + 60_000 };
    });
    await expect(Promise.all([cache.get('x.test'), cache.get('x.test')])).rejects.toThrow('cannot sign x.test');
    expect(calls).toBe(1);
    await expect(cache.get('x.test')).resolves.toBe('x.test');
    expect(calls).toBe(2);
  });

  it('makes a value again once it has expired', async () => {
    let now = 1_000;
    let calls = 0;
    const cache = new CertCache(async (name: string) => ({ value: `${name}#${++calls}`, expiresAt: now + 100 }), 10, () => now);
    expect(await cache.get('y.test')).toBe('y.test#1');
    now += 50;
    expect(cache.peek('y.test')).toBe('y.test#1');
    now += 100;
    expect(cache.peek('y.test')).toBeUndefined();
    expect(await cache.get('y.test')).toBe('y.test#2');
  });
});
