/**
 * The helper `btrfly run --isolate` starts inside the new namespaces (as the namespace's root):
 * it sets up the network (net-setup.ts), hides the host's resolver behind an /etc/resolv.conf
 * seen only here, binds the listeners and hands them to btrfly outside over the IPC channel,
 * then runs the command (as the invoking user, see {@link InsideConfig.user}) and reports its
 * status and the dropped packets. argv[2]: JSON {@link InsideConfig}.
 */
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { accessSync, constants, statSync } from 'node:fs';
import net from 'node:net';
import * as path from 'node:path';
import { droppedFromNftJson, ipBatch, nftRuleset, rulesOfNftJson } from './net-setup';

export interface InsideConfig {
  resolvConf: string;
  proxyPort: number;
  /**
   * The uid and gid btrfly runs as outside, when not root. Everything above needs root inside
   * the namespace (`ip`, `mount`, `nft`, listeners on port 53), but the command does not: it runs
   * in a nested user namespace that maps the namespace's root back to this uid and gid, so it
   * is the user it would be without --isolate (makepkg, npm, pip and git see no root) and can
   * no longer change the namespace's network.
   */
  user?: { uid: number; gid: number };
}

/** Messages from the helper; a handle travels with `listener`. */
export type InsideMessage =
  | { type: 'listener'; role: 'catch-all4' | 'catch-all6' | 'dns-udp' | 'dns-tcp' | 'proxy'; port: number }
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'exit'; code: number; dropped: ReturnType<typeof droppedFromNftJson>; tampered?: string };

/** Messages to the helper: the command to run, then any signal btrfly received. */
export type OutsideMessage = { type: 'start'; command: string[]; env: NodeJS.ProcessEnv } | { type: 'signal'; signal: NodeJS.Signals };

const send = (m: InsideMessage, handle?: net.Server | dgram.Socket): Promise<void> =>
  new Promise((resolve) => process.send!(m, handle as net.Server, undefined, () => resolve()));

/** The file `execvp` would run for `cmd` with this PATH, or undefined when there is none. */
function onPath(cmd: string, pathVar: string | undefined): string | undefined {
  const candidates = cmd.includes('/') ? [cmd] : (pathVar ?? '').split(':').map((dir) => path.join(dir || '.', cmd));
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

/**
 * The `unshare` that can run the command as `user` (see {@link InsideConfig.user}): none for
 * root, nor (with a line that says so) when it has no --map-user (util-linux before 2.38): the
 * command then runs as the namespace's root, as it did before.
 */
function unshareAs(user: InsideConfig['user']): string | undefined {
  if (!user) return undefined;
  const unshare = onPath('unshare', process.env.PATH);
  if (unshare && execFileSync(unshare, ['--help'], { encoding: 'utf8' }).includes('--map-user')) return unshare;
  process.stderr.write('btrfly: this unshare has no --map-user (util-linux before 2.38), so the isolated command runs as root inside its namespace: install util-linux 2.38 or later to run it as yourself\n');
  return undefined;
}

/** The argv that runs `command` as `user` through `unshare`, or as is. */
function asUser(command: string[], unshare: string | undefined, user: InsideConfig['user']): string[] {
  if (!user || !unshare) return command;
  return [unshare, '--user', `--map-user=${user.uid}`, `--map-group=${user.gid}`, '--', ...command];
}

const listenTcp = (port: number, host: string): Promise<net.Server> =>
  new Promise((resolve, reject) => {
    const s = net.createServer({ pauseOnConnect: true });
    s.once('error', reject).listen(port, host, () => resolve(s));
  });

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]) as InsideConfig;
  const unshare = unshareAs(cfg.user);
  execFileSync('ip', ['-batch', '-'], { input: ipBatch() });
  execFileSync('mount', ['--bind', cfg.resolvConf, '/etc/resolv.conf']);
  const catch4 = await listenTcp(0, '127.0.0.1');
  const catch6 = await listenTcp((catch4.address() as net.AddressInfo).port, '::1');
  const dnsTcp = await listenTcp(53, '127.0.0.1');
  const proxy = await listenTcp(cfg.proxyPort, '127.0.0.1');
  const dnsUdp = dgram.createSocket('udp4');
  await new Promise<void>((r) => dnsUdp.bind(53, '127.0.0.1', () => r()));
  const port = (catch4.address() as net.AddressInfo).port;
  execFileSync('nft', ['-f', '-'], { input: nftRuleset({ catchAllPort: port, dnsPort: 53 }) });
  const listTable = (): string => execFileSync('nft', ['-j', 'list', 'table', 'inet', 'btrfly'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const rules = rulesOfNftJson(listTable());
  await send({ type: 'listener', role: 'catch-all4', port }, catch4);
  await send({ type: 'listener', role: 'catch-all6', port }, catch6);
  await send({ type: 'listener', role: 'dns-tcp', port: 53 }, dnsTcp);
  await send({ type: 'listener', role: 'proxy', port: cfg.proxyPort }, proxy);
  await send({ type: 'listener', role: 'dns-udp', port: 53 }, dnsUdp);
  // Signals come over the IPC channel (unshare --fork does not pass them on): kept until the command runs.
  let pending: NodeJS.Signals | undefined;
  let deliver = (signal: NodeJS.Signals): void => void (pending = signal);
  const start = await new Promise<Extract<OutsideMessage, { type: 'start' }>>((r) =>
    process.on('message', (m: OutsideMessage) => (m.type === 'start' ? r(m) : deliver(m.signal))),
  );
  for (const s of [catch4, catch6, dnsTcp, proxy]) s.close();
  dnsUdp.close();
  const notFound = `btrfly: command not found: ${start.command[0]}: check the command after "--"\n`;
  // Looked up here for the same line as without --isolate: through unshare, execvp's ENOENT is unshare's own message.
  const code = unshare && !onPath(start.command[0], start.env.PATH ?? '/usr/local/bin:/usr/bin:/bin')
    ? (process.stderr.write(notFound), 127)
    : await new Promise<number>((resolve) => {
        const argv = asUser(start.command, unshare, cfg.user);
        const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', env: start.env });
        deliver = (signal) => void child.kill(signal);
        if (pending) child.kill(pending);
        for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
        child.once('error', (e: NodeJS.ErrnoException) => {
          process.stderr.write(e.code === 'ENOENT' ? notFound : `btrfly: cannot run ${start.command[0]}: ${e.message}\n`);
          resolve(127);
        });
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- os is needed only when the child died of a signal
        child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 + (require('node:os').constants.signals[signal] ?? 0) : 1)));
      });
  // A command that is root here (btrfly run by root) can change the firewall that counts leaks.
  let json: string | undefined;
  try {
    json = listTable();
  } catch {
    /* the table is gone */
  }
  const tampered = json === undefined ? 'deleted' : rulesOfNftJson(json) !== rules ? 'changed' : undefined;
  await send({ type: 'exit', code, dropped: json === undefined ? [] : droppedFromNftJson(json), ...(tampered && { tampered }) });
  process.exit(0);
}

main().catch(async (e: Error) => {
  await send({ type: 'failed', message: (e.message || String(e)).split('\n').filter(Boolean).slice(-1)[0] ?? 'failed' });
  process.exit(1);
});
