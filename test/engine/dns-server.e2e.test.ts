/**
 * btrfly's DNS server against real clients (dig over UDP and TCP, Node's resolver)
 * and a real upstream resolver, all on loopback. Loopback source addresses play the
 * hosts: 127.0.0.1 is in a session, 127.0.0.2 and 127.0.0.3 are not.
 */
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { promises as dnsPromises } from 'node:dns';
import { registerCleanup } from '../helpers/cleanup';
import { startDnsServer, DnsServer, DnsServerOptions } from '../../src/engine/dns/dns-server';
import { BtrflyError } from '../../src/errors';
import { BIG_TXT_COUNT, dig, FakeUpstream, startFakeUpstream, startSilentUpstream, UPSTREAM_A } from './dns-fixtures';

const PROXY_V4 = '127.77.0.1';
const PROXY_V6 = 'fd00::77';
const SESSION = '127.0.0.1';
const SESSION_V4_ONLY = '127.0.0.4';
const OUTSIDER = '127.0.0.2';

async function startServer(upstream: FakeUpstream | { port: number }, extra: Partial<DnsServerOptions> = {}): Promise<{
  server: DnsServer;
  sessionQueries: string[];
}> {
  const sessionQueries: string[] = [];
  const server = await startDnsServer({
    address: '127.0.0.1',
    port: 0,
    upstream: [`127.0.0.1:${upstream.port}`],
    answerFor: (client) =>
      client === SESSION ? { ipv4: PROXY_V4, ipv6: PROXY_V6 } : client === SESSION_V4_ONLY ? { ipv4: PROXY_V4 } : null,
    onQuery: (q) => sessionQueries.push(`${q.client} ${q.name} ${q.type}`),
    ...extra,
  });
  registerCleanup(() => server.close());
  return { server, sessionQueries };
}

/** Sends one datagram from `from` and resolves with the reply, or null after `waitMs`. */
async function sendRaw(port: number, msg: Buffer, from = OUTSIDER, waitMs = 500): Promise<Buffer | null> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, from, r));
  try {
    return await new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), waitMs);
      socket.once('message', (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      socket.send(msg, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

/** A well-formed query for `name` type A, with header bytes 2-3 set to `flags`. */
function rawQuery(name: string, flags = 0x0100, qdcount = 1): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0x4242, 0);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(qdcount, 4);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

describe('DNS server, session clients', () => {
  let upstream: FakeUpstream;
  let server: DnsServer;
  let sessionQueries: string[];
  beforeAll(async () => {
    upstream = await startFakeUpstream();
    ({ server, sessionQueries } = await startServer(upstream));
  });

  test.each([
    ['UDP', false],
    ['TCP', true],
  ])('over %s, every name resolves to the proxy, also names the upstream does not know', async (_t, tcp) => {
    for (const name of ['example.test', 'does-not-exist.invalid', 'registry.example.com']) {
      const port = tcp ? server.tcpPort : server.udpPort;
      const a = await dig({ port }, name, 'A', { tcp, from: SESSION });
      expect([a.status, a.answers]).toEqual(['NOERROR', [`A ${PROXY_V4}`]]);
      const aaaa = await dig({ port }, name, 'AAAA', { tcp, from: SESSION });
      expect([aaaa.status, aaaa.answers]).toEqual(['NOERROR', [`AAAA ${PROXY_V6}`]]);
    }
    expect(upstream.queries).toEqual([]);
  });

  test('answers carry the small TTL and echo the question as sent, case included', async () => {
    const r = await dig({ port: server.udpPort }, 'ExAmPle.TeSt', 'A', { from: SESSION, extra: ['+noall', '+answer', '+question'] });
    expect(r.output).toContain(';ExAmPle.TeSt.');
    expect(r.output).toMatch(/^ExAmPle\.TeSt\.\s+5\s+IN\s+A\s+127\.77\.0\.1$/m);
  });

  test('without an IPv6 proxy address, AAAA is NOERROR with no answer so clients fall back to A', async () => {
    const r = await dig({ port: server.udpPort }, 'example.test', 'AAAA', { from: SESSION_V4_ONLY });
    expect([r.status, r.answers]).toEqual(['NOERROR', []]);
  });

  test('other types (HTTPS, SVCB, MX, TXT, SRV) are NODATA and never reach the upstream', async () => {
    for (const type of ['TYPE65', 'TYPE64', 'MX', 'TXT', 'SRV']) {
      const r = await dig({ port: server.udpPort }, 'example.test', type, { from: SESSION });
      expect([type, r.status, r.answers]).toEqual([type, 'NOERROR', []]);
    }
    expect(upstream.queries).toEqual([]);
  });

  test("Node's resolver gets the proxy address, and every session query is reported", async () => {
    const resolver = new dnsPromises.Resolver({ timeout: 3000, tries: 1 });
    resolver.setServers([`127.0.0.1:${server.udpPort}`]);
    resolver.setLocalAddress(SESSION);
    expect(await resolver.resolve4('anything.example')).toEqual([PROXY_V4]);
    expect(await resolver.resolve6('anything.example')).toEqual([PROXY_V6]);
    expect(sessionQueries).toEqual(expect.arrayContaining(['127.0.0.1 anything.example A', '127.0.0.1 anything.example AAAA']));
  });
});

describe('DNS server, other clients', () => {
  let upstream: FakeUpstream;
  let server: DnsServer;
  beforeAll(async () => {
    upstream = await startFakeUpstream();
    ({ server } = await startServer(upstream, { allowClient: (a) => a !== '127.0.0.5' }));
  });

  test.each([
    ['UDP', false],
    ['TCP', true],
  ])('over %s, get the upstream answer, NXDOMAIN included', async (_t, tcp) => {
    const port = tcp ? server.tcpPort : server.udpPort;
    const a = await dig({ port }, 'example.test', 'A', { tcp, from: OUTSIDER });
    expect([a.status, a.answers]).toEqual(['NOERROR', [`A ${UPSTREAM_A}`]]);
    const mx = await dig({ port }, 'example.test', 'MX', { tcp, from: OUTSIDER });
    expect(mx.answers).toEqual(['MX 10 mail.example.test.']);
    const nx = await dig({ port }, 'nowhere.test', 'A', { tcp, from: OUTSIDER });
    expect([nx.status, nx.answers]).toEqual(['NXDOMAIN', []]);
    expect(upstream.queries).toEqual(expect.arrayContaining(['example.test A', 'example.test MX', 'nowhere.test A']));
  });

  test("Node's resolver from a host outside any session gets the real answer", async () => {
    const resolver = new dnsPromises.Resolver({ timeout: 3000, tries: 1 });
    resolver.setServers([`127.0.0.1:${server.udpPort}`]);
    resolver.setLocalAddress('127.0.0.3');
    expect(await resolver.resolve4('example.test')).toEqual([UPSTREAM_A]);
  });

  test('a large answer is truncated to a UDP client and complete to a TCP client (upstream retried over TCP)', async () => {
    const udp = await dig({ port: server.udpPort }, 'big.test', 'TXT', { from: OUTSIDER, extra: ['+ignore', '+noedns'] });
    expect(udp.flags).toContain('tc');
    const tcp = await dig({ port: server.tcpPort }, 'big.test', 'TXT', { tcp: true, from: OUTSIDER, extra: ['+noedns'] });
    expect([tcp.status, tcp.flags.includes('tc'), tcp.answers.length]).toEqual(['NOERROR', false, BIG_TXT_COUNT]);
  });

  test('a client that is not allowed is REFUSED and nothing is forwarded', async () => {
    const before = upstream.queries.length;
    const r = await dig({ port: server.udpPort }, 'example.test', 'A', { from: '127.0.0.5' });
    expect(r.status).toBe('REFUSED');
    expect(upstream.queries.length).toBe(before);
  });
});

describe('DNS server, bad input', () => {
  let upstream: FakeUpstream;
  let server: DnsServer;
  beforeAll(async () => {
    upstream = await startFakeUpstream();
    ({ server } = await startServer(upstream));
  });

  test('a response (QR=1) sent to the server is dropped', async () => {
    expect(await sendRaw(server.udpPort, rawQuery('example.test', 0x8180))).toBeNull();
    expect(upstream.queries).toEqual([]);
  });

  test('a non-QUERY opcode gets NOTIMP, a query without question FORMERR', async () => {
    const status = await sendRaw(server.udpPort, rawQuery('example.test', 0x1000)); // opcode 2, STATUS
    expect(status && [status.readUInt16BE(0), status[2] & 0x80, status[3] & 0x0f]).toEqual([0x4242, 0x80, 4]);
    const empty = await sendRaw(server.udpPort, rawQuery('example.test', 0x0100, 0).subarray(0, 12));
    expect(empty && [empty[3] & 0x0f]).toEqual([1]);
  });

  test('20,000 random datagrams: the server stays up and answers a real query promptly', async () => {
    const flood = dgram.createSocket('udp4');
    await new Promise<void>((r) => flood.bind(0, OUTSIDER, r));
    const header = Buffer.from([0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for (let i = 0; i < 20_000; i++) {
      const body = randomBytes(randomInt(0, 600));
      // Half fully random, half behind a plausible query header so the name parser gets exercised.
      const msg = i % 2 === 0 ? body : Buffer.concat([header, body]);
      await new Promise<void>((r) => flood.send(msg, server.udpPort, '127.0.0.1', () => r()));
    }
    flood.close();
    // UDP may drop what arrives while the socket's queue is still full of the flood, as a
    // real resolver's first try can be lost: ask (as a resolver would, once a second) until
    // the server answers, then time a real client against it.
    let answered: Buffer | null = null;
    for (let tries = 0; tries < 10 && !answered; tries++) {
      answered = await sendRaw(server.udpPort, rawQuery('drained.test'), SESSION, 1000);
    }
    expect(answered?.readUInt16BE(6)).toBe(1); // one answer: the proxy's address
    const started = Date.now();
    const r = await dig({ port: server.udpPort }, 'after-the-flood.test', 'A', { from: SESSION });
    expect([r.status, r.answers]).toEqual(['NOERROR', [`A ${PROXY_V4}`]]);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('junk on a TCP connection does not stop the server', async () => {
    const net = await import('node:net');
    const junk = net.connect(server.tcpPort, '127.0.0.1');
    await new Promise((r) => junk.on('connect', r));
    junk.write(Buffer.concat([Buffer.from([0, 40]), randomBytes(40), Buffer.from([0xff, 0xff]), randomBytes(1000)]));
    junk.destroy();
    const r = await dig({ port: server.tcpPort }, 'example.test', 'A', { tcp: true, from: SESSION });
    expect(r.answers).toEqual([`A ${PROXY_V4}`]);
  });
});

describe('DNS server, upstream failures and configuration', () => {
  test('a silent upstream gives SERVFAIL within the upstream timeout', async () => {
    const silent = await startSilentUpstream();
    const { server } = await startServer(silent, { upstreamTimeoutMs: 500 });
    const started = Date.now();
    const r = await dig({ port: server.udpPort }, 'example.test', 'A', { from: OUTSIDER });
    expect(r.status).toBe('SERVFAIL');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(silent.received()).toBe(1);
  });

  test('an upstream with nothing listening gives SERVFAIL over TCP too', async () => {
    const gone = await startFakeUpstream();
    await gone.close();
    const { server } = await startServer(gone, { upstreamTimeoutMs: 500 });
    const r = await dig({ port: server.tcpPort }, 'example.test', 'A', { tcp: true, from: OUTSIDER });
    expect(r.status).toBe('SERVFAIL');
  });

  test('an upstream the host cannot reach (no route, refused by the kernel) is skipped for the next, and alone gives SERVFAIL', async () => {
    // Connecting a UDP socket to the broadcast address fails at once (EACCES), as one to an
    // upstream without a route does (ENETUNREACH: an IPv6 resolver on a host without IPv6).
    const upstream = await startFakeUpstream();
    const { server } = await startServer(upstream, { upstream: ['255.255.255.255', `127.0.0.1:${upstream.port}`] });
    const r = await dig({ port: server.udpPort }, 'example.test', 'A', { from: OUTSIDER });
    expect([r.status, r.answers]).toEqual(['NOERROR', [`A ${UPSTREAM_A}`]]);
    const { server: alone } = await startServer(upstream, { upstream: ['255.255.255.255'] });
    const failed = await dig({ port: alone.udpPort }, 'example.test', 'A', { from: OUTSIDER });
    expect(failed.status).toBe('SERVFAIL');
  });

  test('the server refuses to start with itself as upstream', async () => {
    const probe = await startDnsServer({ address: '127.0.0.1', port: 0, upstream: [], answerFor: () => null });
    const port = probe.udpPort;
    await probe.close();
    for (const [address, upstream] of [
      ['127.0.0.1', `127.0.0.1:${port}`],
      ['0.0.0.0', `127.0.0.1:${port}`],
    ]) {
      const start = startDnsServer({ address, port, upstream: [upstream], answerFor: () => null });
      await expect(start).rejects.toThrow(BtrflyError);
      await expect(start).rejects.toMatchObject({ code: 'CONFIG', message: expect.stringContaining("btrfly's own DNS server") });
    }
  });

  test('a throwing answerFor costs that query only, and is logged', async () => {
    const upstream = await startFakeUpstream();
    const warnings: string[] = [];
    const { server } = await startServer(upstream, {
      answerFor: (client) => {
        if (client === '127.0.0.6') throw new Error('session store unavailable');
        return { ipv4: PROXY_V4 };
      },
      log: (e) => e.level === 'warn' && warnings.push(e.msg),
    });
    expect(await sendRaw(server.udpPort, rawQuery('example.test'), '127.0.0.6')).toBeNull();
    expect((await dig({ port: server.udpPort }, 'example.test', 'A', { from: SESSION })).answers).toEqual([`A ${PROXY_V4}`]);
    expect(warnings).toEqual(['dns: dropped a message: session store unavailable']);
  });

  test('a port already in use is a one-line NETWORK error that says what to do', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((r) => taken.bind(0, '127.0.0.1', r));
    registerCleanup(() => new Promise<void>((r) => taken.close(() => r())));
    const start = startDnsServer({ address: '127.0.0.1', port: taken.address().port, upstream: [], answerFor: () => null });
    await expect(start).rejects.toMatchObject({
      code: 'NETWORK',
      message: expect.stringMatching(/^cannot listen for DNS on 127\.0\.0\.1:\d+: .*EADDRINUSE: the address is already in use; stop the other listener or pick another port$/),
    });
  });

  test('a bad upstream address is a one-line CONFIG error', async () => {
    const start = startDnsServer({ address: '127.0.0.1', port: 0, upstream: ['dns.google'], answerFor: () => null });
    await expect(start).rejects.toMatchObject({ code: 'CONFIG', message: expect.stringMatching(/^upstream resolver "dns.google" .*: use /) });
  });

  test('on a dual-stack address, IPv4 clients are seen as IPv4 and IPv6 clients are served too', async () => {
    const upstream = await startFakeUpstream();
    const seen: string[] = [];
    const server = await startDnsServer({
      address: '::',
      port: 0,
      upstream: [`127.0.0.1:${upstream.port}`],
      answerFor: (client) => {
        seen.push(client);
        return client === '::1' ? { ipv6: PROXY_V6 } : null;
      },
    });
    registerCleanup(() => server.close());
    const v6 = await dig({ port: server.udpPort, host: '::1' }, 'example.test', 'AAAA');
    expect(v6.answers).toEqual([`AAAA ${PROXY_V6}`]);
    const v4 = await dig({ port: server.tcpPort }, 'example.test', 'A', { tcp: true, from: OUTSIDER });
    expect(v4.answers).toEqual([`A ${UPSTREAM_A}`]);
    expect(seen).toEqual(['::1', OUTSIDER]);
  });
});
