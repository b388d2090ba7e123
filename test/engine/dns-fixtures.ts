/**
 * Real DNS peers for the DNS server's tests: a fake upstream resolver (a dns2 server
 * answering fixed records and counting what it is asked) and a `dig` wrapper.
 */
import dgram from 'node:dgram';
import DNS from 'dns2';
import { registerCleanup } from '../helpers/cleanup';
import { run } from '../helpers/proc';

const { Packet } = DNS;

/** Records the fake upstream knows; every other name is NXDOMAIN. */
export const UPSTREAM_A = '192.0.2.10';
export const BIG_TXT_COUNT = 30;

/** A dns2 server on 127.0.0.1 answering fixed records on one port, UDP and TCP. */
export interface FakeUpstream {
  port: number;
  /** Every question received, as `name TYPE`. */
  queries: string[];
  close(): Promise<void>;
}

/** Starts the fake upstream resolver on a free port of 127.0.0.1 (UDP and TCP on the same port). */
export async function startFakeUpstream(): Promise<FakeUpstream> {
  const queries: string[] = [];
  const handle: DNS.DnsHandler = (request, send) => {
    const q = request.questions[0];
    queries.push(`${q.name} ${Packet.typeName(q.type)}`);
    const response = Packet.createResponseFromRequest(request);
    response.header.ra = 1;
    const base = { name: q.name, class: Packet.CLASS.IN, ttl: 60 };
    if (q.name === 'example.test' && q.type === Packet.TYPE.A) {
      response.answers.push({ ...base, type: Packet.TYPE.A, address: UPSTREAM_A } as DNS.Packet.Resource);
    } else if (q.name === 'example.test' && q.type === Packet.TYPE.MX) {
      response.answers.push({ ...base, type: Packet.TYPE.MX, exchange: 'mail.example.test', priority: 10 } as DNS.Packet.Resource);
    } else if (q.name === 'big.test' && q.type === Packet.TYPE.TXT) {
      for (let i = 0; i < BIG_TXT_COUNT; i++) {
        response.answers.push({ ...base, type: Packet.TYPE.TXT, data: `record-${i}-${'x'.repeat(40)}` } as DNS.Packet.Resource);
      }
    } else if (q.name !== 'example.test' && q.name !== 'big.test') {
      response.header.rcode = Packet.RCODE.NXDOMAIN;
    }
    send(response);
  };
  const udp = DNS.createUDPServer(handle);
  const tcp = DNS.createTCPServer(handle);
  await udp.listen(0, '127.0.0.1');
  const port = udp.address().port;
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => resolve());
  });
  const close = async (): Promise<void> => {
    unregister();
    await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
  };
  const unregister = registerCleanup(close);
  return { port, queries, close };
}

/** A UDP socket that takes queries and never answers: an upstream that has gone silent. */
export async function startSilentUpstream(): Promise<{ port: number; received: () => number }> {
  const socket = dgram.createSocket('udp4');
  let count = 0;
  socket.on('message', () => count++);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  registerCleanup(() => new Promise<void>((r) => socket.close(() => r())));
  return { port: socket.address().port, received: () => count };
}

/** What `dig` reported. */
export interface DigResult {
  status: string;
  flags: string[];
  /** Answer section, as `TYPE rdata` (e.g. `A 127.77.0.1`). */
  answers: string[];
  output: string;
  code: number | null;
}

/**
 * Runs `dig` against the server. `from` binds the client to a loopback address, to
 * play a different host.
 */
export async function dig(
  server: { port: number; host?: string },
  name: string,
  type: string,
  opts: { tcp?: boolean; from?: string; extra?: string[] } = {},
): Promise<DigResult> {
  const args = [`@${server.host ?? '127.0.0.1'}`, '-p', String(server.port), name, type, '+tries=1', '+time=5', '+noall', '+comments', '+answer'];
  if (opts.tcp) args.push('+tcp');
  if (opts.from) args.push('-b', opts.from);
  args.push(...(opts.extra ?? []));
  const r = await run('dig', args, { timeoutMs: 20_000 });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? 'NO-ANSWER';
  const flags = (/;; flags: ([a-z ]+);/.exec(r.stdout)?.[1] ?? '').trim().split(/\s+/);
  const answers = r.stdout
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => l.split(/\s+/))
    .map((f) => `${f[3]} ${f.slice(4).join(' ')}`);
  return { status, flags, answers, output: r.stdout, code: r.code };
}
