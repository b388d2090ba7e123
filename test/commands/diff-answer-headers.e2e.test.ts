/**
 * A re-recording whose answers keep their status and body but whose redirect target or body
 * type moved: `btrfly diff` lists them as changed and says which header changed, in text,
 * Markdown and JSON (before, a 302 whose Location moved to another host read as unchanged).
 */
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

describe('btrfly diff of answers that changed only in a header', () => {
  let server: http.Server;
  let archive: string;
  /** What the origin answers now; changed between the two recordings. */
  const now = { location: 'https://downloads.test/tool-1.0.tgz', type: 'text/plain' };
  let base: string;

  const record = async (tag: string): Promise<void> => {
    const cmd = `curl -sS -o /dev/null ${base}/latest && curl -sS -o /dev/null ${base}/notes && curl -sS -o /dev/null ${base}/same`;
    const r = await runCli(['run', '--record', `--tag=${tag}`, '--archive', archive, '--resolve', 'origin.test:127.0.0.1', '--', 'bash', '-c', cmd], { timeoutMs: 60_000 });
    expect(r.stderr).toMatch(new RegExp(`recorded tag "${tag}"`));
    expect(r.code).toBe(0);
  };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      // The same body whatever the target, as many servers send for a redirect.
      if (req.url === '/latest') res.writeHead(302, { Location: now.location, 'Content-Type': 'text/html' }).end('<p>Moved</p>');
      else if (req.url === '/notes') res.writeHead(200, { 'Content-Type': now.type }).end('{"v":1}');
      else res.writeHead(200, { 'Content-Type': 'text/plain' }).end('same');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://origin.test:${(server.address() as AddressInfo).port}`;
    archive = join(tmpDir(), 'archive');
    await record('before');
    now.location = 'https://mirror.test/tool-1.0.tgz';
    now.type = 'application/json';
    await record('after');
  }, 120_000);

  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it('text: each changed header on the changed line, the rest unchanged', async () => {
    const r = await runCli(['diff', 'before', 'after', '--archive', archive]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n').slice(2);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`^~ GET ${base}/latest  302 .* -> 302 .*  Location: https://downloads.test/tool-1.0.tgz -> https://mirror.test/tool-1.0.tgz$`));
    expect(lines[1]).toMatch(new RegExp(`^~ GET ${base}/notes  200 .*  Content-Type: text/plain -> application/json$`));
    expect(lines[2]).toBe('0 added, 0 removed, 2 changed, 1 unchanged (±0 B)');
  });

  it('markdown and json say the same', async () => {
    const md = await runCli(['diff', 'before', 'after', '--archive', archive, '--format', 'markdown']);
    expect(md.stdout).toContain('| 302 (Location: `https://downloads.test/tool-1.0.tgz` → `https://mirror.test/tool-1.0.tgz`) |');
    const json = await runCli(['diff', 'before', 'after', '--archive', archive, '--json']);
    const d = JSON.parse(json.stdout) as { changed: Array<{ url: string; headers?: unknown }>; unchanged: number };
    expect(d.changed.map((c) => [c.url, c.headers])).toEqual([
      [`${base}/latest`, [{ name: 'Location', from: 'https://downloads.test/tool-1.0.tgz', to: 'https://mirror.test/tool-1.0.tgz' }]],
      [`${base}/notes`, [{ name: 'Content-Type', from: 'text/plain', to: 'application/json' }]],
    ]);
    expect(d.unchanged).toBe(1);
  });
});
