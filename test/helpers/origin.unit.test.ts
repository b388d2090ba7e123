import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { genBodySha256, run, startOrigin, type Origin } from './index';

/** curl with headers dumped to stdout before the body; `--noproxy` keeps it off any host proxy. */
async function curl(args: string[]) {
  const result = await run('curl', ['-sS', '--noproxy', '*', '-D', '-', ...args]);
  expect(result.stderr).toBe('');
  const [head, ...rest] = result.stdout.split('\r\n\r\n');
  const etag = /^etag: (.*)$/im.exec(head)?.[1];
  return { status: Number(head.split(' ')[1]), head: head.toLowerCase(), etag, body: rest.join('\r\n\r\n'), code: result.code };
}

/** SHA-256 of a response body, streamed. */
function fetchSha(url: string, headers: Record<string, string> = {}): Promise<{ status: number; sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      pipeline(res, hash).then(() => resolve({ status: res.statusCode!, sha: hash.digest('hex'), bytes }), reject);
    })
      .on('error', reject)
      .end();
  });
}

describe('test origin over HTTP', () => {
  let origin: Origin;
  beforeAll(async () => {
    origin = await startOrigin();
  });

  test('serves a byte range of a file with 206 and Content-Range', async () => {
    const res = await curl(['-r', '5-9', `${origin.url}/files/hello.txt`]);
    expect(res.status).toBe(206);
    expect(res.head).toContain('content-range: bytes 5-9/34');
    expect(res.body).toBe(' from');
  });

  test('answers If-None-Match with 304 for files and generated bodies', async () => {
    for (const path of ['/files/hello.txt', '/gen/1000?seed=3']) {
      const first = await curl([`${origin.url}${path}`]);
      const etag = first.etag!;
      expect(first.head).toContain('last-modified:');
      const second = await curl(['-H', `If-None-Match: ${etag}`, `${origin.url}${path}`]);
      expect(second.status).toBe(304);
      expect(second.body).toBe('');
    }
  });

  test('streams a generated body whose digest the helper predicts, and ranges of it', async () => {
    const size = 5 * 1024 * 1024 + 7;
    const whole = await fetchSha(`${origin.url}/gen/${size}?seed=42`);
    expect(whole).toEqual({ status: 200, bytes: size, sha: await genBodySha256(size, 42) });
    const part = await fetchSha(`${origin.url}/gen/${size}?seed=42`, { Range: 'bytes=100003-2000000' });
    expect(part).toEqual({ status: 206, bytes: 1899998, sha: await genBodySha256(size, 42, { start: 100003, end: 2000001 }) });
    expect(await genBodySha256(size, 43)).not.toBe(whole.sha);
  });

  test('gzip-encodes only for clients that accept it', async () => {
    const gz = await curl(['--compressed', `${origin.url}/gz/5000`]);
    expect(gz.head).toContain('content-encoding: gzip');
    expect(gz.head).toContain('vary: accept-encoding');
    const plain = await curl([`${origin.url}/gz/5000`]);
    expect(plain.head).not.toContain('content-encoding');
    expect(plain.body).toHaveLength(5000);
    expect(gz.body).toBe(plain.body);
  });

  test('counter, echo, negotiation, redirect, chunked, status', async () => {
    expect((await curl([`${origin.url}/counter`])).body).not.toBe((await curl([`${origin.url}/counter`])).body);
    const echo = await curl(['--data-binary', 'hello body', `${origin.url}/echo`]);
    expect(JSON.parse(echo.body)).toMatchObject({
      method: 'POST',
      bytes: 10,
      sha256: createHash('sha256').update('hello body').digest('hex'),
    });
    const json = await curl(['-H', 'Accept: application/json', `${origin.url}/negotiate`]);
    expect(json.head).toMatch(/vary: accept/);
    expect(JSON.parse(json.body)).toEqual({ format: 'json' });
    expect((await curl(['-H', 'Accept: text/plain', `${origin.url}/negotiate`])).body).toBe('format: text\n');
    const redirect = await curl([`${origin.url}/redirect?to=${encodeURIComponent('http://cdn.test:81/x')}`]);
    expect(redirect.status).toBe(302);
    expect(redirect.head).toContain('location: http://cdn.test:81/x');
    const chunked = await curl([`${origin.url}/chunked/3?size=8`]);
    expect(chunked.head).toContain('transfer-encoding: chunked');
    expect(chunked.body).toBe('000000:x000001:x000002:x');
    expect((await curl([`${origin.url}/status/503`])).status).toBe(503);
  });

  test('counts requests per path, and resets', async () => {
    await origin.resetStats();
    await curl([`${origin.url}/files/hello.txt`]);
    await curl([`${origin.url}/files/hello.txt`]);
    const stats = await origin.stats();
    expect(stats.total).toBe(2);
    expect(stats.byPath['/files/hello.txt']).toBe(2);
    expect(stats.requests[0].headers['user-agent']).toMatch(/^curl/);
    const control = await curl([`http://${origin.host}:${origin.controlPort}/__stats`]);
    expect(JSON.parse(control.body).total).toBe(2);
  });
});

describe('test origin over HTTPS', () => {
  test('is trusted through the test CA under every test name', async () => {
    const origin = await startOrigin({ https: true });
    for (const name of ['origin.test', 'cdn.test']) {
      const res = await curl(['--cacert', origin.caPath!, '--resolve', `${name}:${origin.port}:127.0.0.1`, origin.urlFor('/files/hello.txt', name)]);
      expect(res.body).toBe('hello from the btrfly test origin\n');
    }
    const byIp = await curl(['--cacert', origin.caPath!, `${origin.url}/counter`]);
    expect(byIp.status).toBe(200);
    const untrusted = await run('curl', ['-sS', '--noproxy', '*', '--capath', '/nonexistent', '--cacert', '/dev/null', `${origin.url}/counter`]);
    expect(untrusted.code).not.toBe(0);
    await origin.close();
  });
});

describe('spawned test origin', () => {
  test('runs as its own process and reports stats over IPC', async () => {
    const origin = await startOrigin({ spawn: true, https: true });
    const res = await curl(['--cacert', origin.caPath!, `${origin.url}/gen/10`]);
    expect(res.status).toBe(200);
    expect((await origin.stats()).byPath).toEqual({ '/gen/10': 1 });
    await origin.close();
    const after = await run('curl', ['-sS', '--noproxy', '*', '--max-time', '5', `${origin.url}/gen/10`]);
    expect(after.code).toBe(7); // connection refused: the process is gone
  });

  test('close() drops keep-alive connections at once', async () => {
    const origin = await startOrigin();
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) =>
      request(`${origin.url}/counter`, { agent }, (res) => res.resume().on('end', resolve)).on('error', reject).end(),
    );
    const started = Date.now();
    await origin.close();
    expect(Date.now() - started).toBeLessThan(1000);
    agent.destroy();
  });
});
