/**
 * `btrfly run --isolate`: runs the command in its own user, network and mount namespaces
 * (no root) whose only way out is btrfly. The helper inside (inside.ts) hands over its
 * listeners; here DNS answers every name with an address of its own in 198.18.0.0/15
 * (fake-names.ts), every intercepted TCP connection goes to the proxy with its original
 * destination (TLS by SNI, HTTP by Host, else the name behind the address), and what the proxy
 * cannot carry is refused and listed by that name.
 */
import { spawn } from 'node:child_process';
import type dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type net from 'node:net';
import * as path from 'node:path';
import { BtrflyError } from '../../errors';
import { createQueryHandler } from '../dns-query-handler';
import { frame, readFramedMessages } from '../dns-tcp';
import type { ProxyServer } from '../proxy-server';
import { FakeNames } from './fake-names';
import { classifyFirstBytes } from './first-bytes';
import type { InsideConfig, InsideMessage } from './inside';
import { userNamespaceProblem } from './kernel';
import { originalDestination, readTcpRows } from './proc-net';

/** A connection that has sent nothing after this long speaks a server-first protocol (SSH banner, SMTP): refused. */
const SILENT_MS = 1000;

/** Something the isolated command tried that btrfly cannot carry; it never left the namespace. */
export interface Leak {
  protocol: string;
  /** The name the command resolved (through btrfly's DNS inside), or the address it used as is. */
  address: string;
  port?: number;
  reason: string;
}

export interface IsolatedRunOptions {
  command: string[];
  env: NodeJS.ProcessEnv;
  proxy: ProxyServer;
  sessionId: string;
  workDir: string;
}

function sysctl(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** Runs the command isolated; resolves with its exit status and what it tried that btrfly could not carry. */
export async function runIsolated(o: IsolatedRunOptions): Promise<{ code: number; leaks: Leak[] }> {
  const problem = userNamespaceProblem(
    {
      unprivilegedUsernsClone: sysctl('/proc/sys/kernel/unprivileged_userns_clone'),
      maxUserNamespaces: sysctl('/proc/sys/user/max_user_namespaces'),
      apparmorRestrict: sysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
    },
    process.getuid?.() === 0,
  );
  if (problem) throw new BtrflyError('CONFIG', problem);
  const resolvConf = path.join(o.workDir, 'resolv.conf');
  await writeFile(resolvConf, 'nameserver 127.0.0.1\n');
  const cfg: InsideConfig = { resolvConf, proxyPort: o.proxy.proxyPort ?? 0 };
  const helper = spawn('unshare', ['--user', '--map-root-user', '--net', '--mount', '--', process.execPath, path.join(__dirname, 'inside.js'), JSON.stringify(cfg)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  const leaks: Leak[] = [];
  const handles: Array<net.Server | dgram.Socket> = [];
  const names = new FakeNames();
  const dns = createQueryHandler({
    answerFor: (_client, name) => ({ ipv4: names.addressFor(name) }),
    allowClient: () => false,
    upstreams: [],
    ttl: 5,
    upstreamTimeoutMs: 1,
    maxForwards: 0,
    log: () => undefined,
    signal: new AbortController().signal,
  });
  const intercept = (listener: net.Server) => (socket: net.Socket) => {
    void carry(socket, listener, helper.pid!, o, names, leaks);
  };
  const forwardSignal = (sig: NodeJS.Signals) => () => helper.kill(sig);
  const signals = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((s) => [s, forwardSignal(s)] as const);
  for (const [s, h] of signals) process.on(s, h);
  try {
    return await new Promise((resolve, reject) => {
      helper.once('error', (e) => reject(new BtrflyError('CONFIG', `cannot start unshare for --isolate: ${e.message}: install util-linux, nftables and iproute2`)));
      helper.once('exit', (code) => reject(new BtrflyError('CONFIG', `the isolated namespace could not be made (unshare exited ${code}, see above): check that unprivileged user namespaces are allowed, or run without --isolate`)));
      helper.on('message', (m: InsideMessage, handle?: net.Server | dgram.Socket) => {
        if (m.type === 'listener' && handle) {
          handles.push(handle);
          if (m.role === 'dns-udp') {
            const udp = handle as dgram.Socket;
            udp.on('message', (msg, rinfo) => {
              const out = dns(msg, rinfo.address, false);
              if (Buffer.isBuffer(out)) udp.send(out, rinfo.port, rinfo.address);
            });
            helper.send({ command: o.command, env: o.env });
          } else {
            const server = handle as net.Server;
            if (m.role === 'dns-tcp') server.on('connection', (s: net.Socket) => readFramedMessages(s.resume(), (msg) => { const out = dns(msg, '127.0.0.1', true); if (Buffer.isBuffer(out)) s.write(frame(out)); }));
            else if (m.role === 'proxy') server.on('connection', (s: net.Socket) => o.proxy.adopt(s.resume(), { kind: 'proxy' }));
            else server.on('connection', intercept(server));
          }
        } else if (m.type === 'failed') {
          reject(new BtrflyError('CONFIG', `the isolated namespace could not be set up: ${m.message}: check that nftables and iproute2 are installed, or run without --isolate`));
        } else if (m.type === 'exit') {
          for (const d of m.dropped) leaks.push({ ...d, address: names.nameOf(d.address) ?? d.address, reason: d.protocol === 'udp' ? 'UDP other than DNS' : 'not TCP or UDP' });
          helper.removeAllListeners('exit');
          resolve({ code: m.code, leaks });
        }
      });
    });
  } finally {
    for (const [s, h] of signals) process.off(s, h);
    for (const h of handles) (h as net.Server).close();
  }
}

/** Hands an intercepted connection to the proxy with its original destination, or refuses and lists it. */
async function carry(socket: net.Socket, listener: net.Server, pid: number, o: IsolatedRunOptions, names: FakeNames, leaks: Leak[]): Promise<void> {
  socket.on('error', () => undefined);
  const local = listener.address() as net.AddressInfo;
  const dest = originalDestination(await readTcpRows(pid), { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }, { address: local.address, port: local.port });
  if (!dest) return void socket.destroy();
  const name = names.nameOf(dest.address);
  const first = await firstChunk(socket.resume());
  const kind = first ? classifyFirstBytes(first) : 'other';
  if (kind === 'other') {
    leaks.push({ protocol: 'tcp', address: name ?? dest.address, port: dest.port, reason: first ? 'not HTTP or TLS' : `sent nothing for ${SILENT_MS} ms (a protocol where the server speaks first)` });
    return void socket.resetAndDestroy();
  }
  socket.unshift(first!);
  const host = name ?? (dest.address.includes(':') ? `[${dest.address}]` : dest.address);
  o.proxy.adopt(socket, { kind: 'transparent', authority: `${host}:${dest.port}`, sessionId: o.sessionId });
}

function firstChunk(socket: net.Socket): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), SILENT_MS);
    const onData = (b: Buffer) => done(b);
    const onEnd = () => done(undefined);
    const done = (b: Buffer | undefined) => {
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData).off('end', onEnd).off('close', onEnd);
      resolve(b);
    };
    socket.on('data', onData).once('end', onEnd).once('close', onEnd);
  });
}
