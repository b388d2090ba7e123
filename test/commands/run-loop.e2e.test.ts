/**
 * A build that sends requests to btrfly's own proxy port through the proxy (a loop) gets
 * `508 Loop Detected`, whether by IP, by `localhost` or through a CONNECT tunnel, and nothing
 * of it is recorded: before, the forwarded request came back to the proxy as a client in no
 * session and its 407 was stored as the answer. A name that resolves to the proxy is caught at
 * the connection (the proxy knows its own upstream sockets) and reported as an upstream error.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

describe('btrfly run --record: requests addressed to the proxy itself', () => {
  const archive = join(tmpDir(), 'archive');

  it('answers 508 by IP, by localhost and through a tunnel, and records none of them', async () => {
    const out = tmpDir();
    // $HTTP_PROXY is http://btrfly:SECRET@127.0.0.1:PORT; --noproxy '' sends even loopback through it.
    const script = [
      'set -eu',
      'P="${HTTP_PROXY##*@}"',
      `code() { curl -sS --noproxy '' -o "${out}/$1.body" -D "${out}/$1.head" -w '%{http_code}' "$2" > "${out}/$1.code"; }`,
      'code ip "http://$P/a?x=1"',
      'code localhost "http://localhost:${P##*:}/b"',
      'code tunnel "https://$P/c"',
      'code named "http://self.test:${P##*:}/d"',
    ].join('\n');
    const r = await runCli(['run', '--record', '--tag=loop', '--archive', archive, '--resolve', 'self.test:127.0.0.1', '--', 'bash', '-c', script], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    const read = (name: string, ext: string) => readFileSync(join(out, `${name}.${ext}`), 'utf8');
    for (const name of ['ip', 'localhost', 'tunnel']) {
      expect(`${name} ${read(name, 'code')}`).toBe(`${name} 508`);
      expect(read(name, 'head')).toMatch(/^HTTP\/1\.1 508 Loop Detected\r$/m);
      expect(read(name, 'head')).toMatch(/^x-btrfly: loop\r$/im);
      expect(read(name, 'body')).toMatch(/^btrfly: .* is btrfly's own proxy, so this request would loop: send it to the real server, or exclude it from the proxy with NO_PROXY\n$/);
    }
    // A name for the proxy's address: the proxy refuses its own upstream connection.
    expect(read('named', 'code')).toBe('502');
    expect(read('named', 'head')).toMatch(/^x-btrfly-upstream-error: /im);
    // The loops never reached the session; the named one did, and failed upstream.
    expect(r.stderr).toMatch(/recorded tag "loop" \(recording [0-9a-f]{12}\): 1 requests, 0 entries, 0 B, 1 upstream errors\n$/);
    const show = await runCli(['show', 'loop', '--json', '--archive', archive]);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout).entries).toEqual([]);
  });
});
