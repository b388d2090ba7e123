/**
 * `btrfly run --isolate`: runs the command in its own user, network and mount namespaces
 * (no root; the command runs as the user who started btrfly) whose only way out is btrfly. The helper inside (inside.ts) hands over its
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
import { BtrflyError } from '../../../errors';
import { createQueryHandler } from '../../dns/dns-query-handler';
import { frame, readFramedMessages } from '../../dns/dns-tcp';
import type { ProxyServer } from '../../proxy/proxy-server';
import { FakeNames } from './fake-names';
import { classifyFirstBytes } from './first-bytes';
import type { InsideConfig, InsideMessage, OutsideMessage } from './inside';
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
  /** Not a connection: the command (root inside) changed the firewall that counts them, so the list may lack some. */
  uncounted?: true;
}

/** What the namespace is made for: the proxy its listeners go to, and a directory for its resolv.conf. */
export interface IsolationOptions {
  proxy: ProxyServer;
  workDir: string;
}

/** A namespace made and ready (its listeners handed over), waiting for its command. */
export interface Isolation {
  /** Runs the command inside; resolves with its exit status and what it tried that btrfly could not carry. */
  run(command: string[], env: NodeJS.ProcessEnv, sessionId: string): Promise<{ code: number; leaks: Leak[] }>;
  /** Ends the helper without running anything (the run failed before its command). */
  abort(): void;
}

function sysctl(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/**
 * Makes the namespaces and waits until the helper inside has handed its listeners over. It
 * needs only the proxy's port, so `run` starts it while the session opens and the child's
 * environment is written: its ~250 ms (a Node start inside, `ip`, `mount`, `nft`) overlap those.
 */
export async function startIsolation(o: IsolationOptions): Promise<Isolation> {
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
  const uid = process.getuid?.() ?? 0;
  const cfg: InsideConfig = { resolvConf, proxyPort: o.proxy.proxyPort ?? 0, user: uid === 0 ? undefined : { uid, gid: process.getgid?.() ?? uid } };
  // A PID namespace of its own, whose init is the helper: whatever the command leaves running in
  // the background (a build tool's daemon) ends with it, rather than live on in a namespace that
  // has no way out. unshare stays as the parent (--fork) and kills the helper if it dies itself.
  const helper = spawn('unshare', ['--user', '--map-root-user', '--net', '--mount', '--pid', '--fork', '--kill-child', '--', process.execPath, path.join(__dirname, 'inside.js'), JSON.stringify(cfg)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { PATH: withSbin(process.env.PATH) },
  });
  const leaks: Leak[] = [];
  const handles: Array<net.Server | dgram.Socket> = [];
  const names = new FakeNames();
  const session = { id: '' };
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
    void carry(socket, listener, helper.pid!, o.proxy, session.id, names, leaks);
  };
  // unshare --fork does not pass signals on to the helper: they go over the IPC channel.
  const tell = (m: OutsideMessage): void => void (helper.connected && helper.send(m));
  const forwardSignal = (signal: NodeJS.Signals) => () => tell({ type: 'signal', signal });
  const signals = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((s) => [s, forwardSignal(s)] as const);
  for (const [s, h] of signals) process.on(s, h);
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    for (const [s, h] of signals) process.off(s, h);
    for (const h of handles) (h as net.Server).close();
  };
  let ready!: () => void;
  let exited!: (r: { code: number; leaks: Leak[] }) => void;
  let failed!: (e: Error) => void;
  const readyP = new Promise<void>((resolve) => (ready = resolve));
  const exitP = new Promise<{ code: number; leaks: Leak[] }>((resolve) => (exited = resolve));
  const failedP = new Promise<never>((_, reject) => (failed = reject));
  failedP.catch(() => undefined); // read where it is raced against
  helper.once('error', (e) => failed(new BtrflyError('CONFIG', `cannot start unshare for --isolate: ${e.message}: install util-linux, nftables and iproute2`)));
  const unshareFailed = (code: number | null): void => failed(new BtrflyError('CONFIG', `the isolated namespace could not be made (unshare exited ${code}, see above): check that unprivileged user namespaces are allowed, or run without --isolate`));
  helper.once('exit', unshareFailed);
  const gone = new Promise<void>((resolve) => helper.once('exit', () => resolve()));
  helper.on('message', (m: InsideMessage, handle?: net.Server | dgram.Socket) => {
    if (m.type === 'listener' && handle) {
      handles.push(handle);
      if (m.role === 'dns-udp') {
        const udp = handle as dgram.Socket;
        udp.on('message', (msg, rinfo) => {
          const out = dns(msg, rinfo.address, false);
          if (Buffer.isBuffer(out)) udp.send(out, rinfo.port, rinfo.address);
        });
        ready(); // the last listener: the namespace is ready for its command
      } else {
        const server = handle as net.Server;
        if (m.role === 'dns-tcp') server.on('connection', (s: net.Socket) => readFramedMessages(s.resume(), (msg) => { const out = dns(msg, '127.0.0.1', true); if (Buffer.isBuffer(out)) s.write(frame(out)); }));
        else if (m.role === 'proxy') server.on('connection', (s: net.Socket) => o.proxy.adopt(s.resume(), { kind: 'proxy' }));
        else server.on('connection', intercept(server));
      }
    } else if (m.type === 'failed') {
      failed(new BtrflyError('CONFIG', `the isolated namespace could not be set up: ${m.message}: check that nftables and iproute2 are installed, or run without --isolate`));
    } else if (m.type === 'exit') {
      for (const d of m.dropped) leaks.push({ ...d, address: names.nameOf(d.address) ?? d.address, reason: d.protocol === 'udp' ? 'UDP other than DNS' : 'not TCP or UDP' });
      // Nothing left the namespace (it has no route out), but what was refused was not all counted.
      if (m.tampered) leaks.push({ protocol: 'any', address: '*', reason: `the command ${m.tampered} btrfly's firewall in the namespace (nft table inet btrfly), so what it could not carry was not all counted`, uncounted: true });
      helper.off('exit', unshareFailed);
      exited({ code: m.code, leaks });
    }
  });
  try {
    await Promise.race([readyP, failedP]);
  } catch (e) {
    cleanup();
    helper.kill('SIGKILL');
    throw e;
  }
  return {
    async run(command, env, sessionId) {
      session.id = sessionId;
      try {
        tell({ type: 'start', command, env });
        const result = await Promise.race([exitP, failedP]);
        await gone; // and with the helper, every process of the namespace
        return result;
      } finally {
        cleanup();
      }
    },
    abort() {
      cleanup();
      helper.kill('SIGKILL');
    },
  };
}

/** Hands an intercepted connection to the proxy with its original destination, or refuses and lists it. */
async function carry(socket: net.Socket, listener: net.Server, pid: number, proxy: ProxyServer, sessionId: string, names: FakeNames, leaks: Leak[]): Promise<void> {
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
  proxy.adopt(socket, { kind: 'transparent', authority: `${host}:${dest.port}`, sessionId });
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

/**
 * The helper's PATH (it runs `ip`, `nft`, `mount`): the user's, plus the sbin directories where
 * distributions put those, which a user's PATH often lacks (Debian's default for a user is
 * /usr/local/bin:/usr/bin:/bin): --isolate then said nftables was not installed. The command's
 * own PATH is the user's, unchanged.
 */
function withSbin(userPath: string | undefined): string {
  const dirs = (userPath ?? '/usr/bin:/bin').split(path.delimiter).filter(Boolean);
  for (const sbin of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(sbin)) dirs.push(sbin);
  return dirs.join(path.delimiter);
}
