import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { registerCleanup } from './cleanup';
import { run, runOk, type RunOptions, type RunResult } from './proc';

/**
 * Network namespaces for tests that must prove where packets go: an origin that only a
 * namespace can reach, a playback that runs where no network exists. Everything made
 * here (namespaces, veth pairs, 10.200.x.y/30 addresses) lives inside namespaces the
 * test created; the host's own interfaces, routes and resolver are never touched.
 *
 * Names are `btrfly-t<pid>-<n>`, so namespaces left behind by a killed test run are
 * recognised and swept by the next run ({@link sweepStaleNetns}).
 */

/** A network namespace made by a test. */
export interface Netns {
  /** The name for `ip netns exec` / `ip -n`. */
  readonly name: string;
  /** Runs a command inside the namespace to completion. */
  exec(cmd: string, args?: readonly string[], options?: RunOptions): Promise<RunResult>;
  /**
   * Starts a long-running command inside the namespace. It is killed when the namespace
   * is closed. (`ip netns exec` execs the command, so the child's pid is the command's own,
   * and an IPC channel in `stdio` reaches it.)
   */
  spawn(cmd: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Kills what runs inside, then deletes the namespace and its interfaces. Idempotent. */
  close(): Promise<void>;
}

/** One end of a veth pair. */
export interface LinkEnd {
  ns: Netns;
  ifname: string;
  /** IPv4 address, without prefix length. */
  address: string;
}

/** A veth pair between two namespaces, on a /30 of its own. */
export interface VethLink {
  a: LinkEnd;
  b: LinkEnd;
}

/** Packet and byte counters of an interface, as the kernel counts them. */
export interface LinkStats {
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

const PREFIX = `btrfly-t${process.pid}-`;
const STALE = /^btrfly-t(\d+)-/;
let nextNs = 0;
let nextLink = 0;
let swept = false;
let available: boolean | undefined;
const live = new Map<string, Set<ChildProcess>>();

/**
 * Whether this machine lets the test create network namespaces (Linux, root, `ip` from
 * iproute2). Checked once by creating and deleting a probe namespace.
 */
export function hasNetns(): boolean {
  if (available !== undefined) return available;
  const probe = `${PREFIX}probe`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    available = true;
  } catch {
    available = false;
  }
  return available;
}

/**
 * Deletes `btrfly-t<pid>-*` namespaces whose process is gone (left by a crashed or
 * killed test run). Namespaces of live processes, and any other namespace, are kept.
 */
export function sweepStaleNetns(): string[] {
  const removed: string[] = [];
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const pid = STALE.exec(name)?.[1];
    if (!pid || pidAlive(Number(pid))) continue;
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      removed.push(name);
    } catch {
      /* another sweeper got it first */
    }
  }
  return removed;
}

/**
 * Creates an empty namespace: only loopback, up. That alone is the "hermetic" place to
 * run a playback: nothing outside it can be reached. Deleted at the end of the test file
 * at the latest.
 */
export async function createNetns(): Promise<Netns> {
  if (!swept) {
    swept = true;
    sweepStaleNetns();
  }
  const name = `${PREFIX}${nextNs++}`;
  await runOk('ip', ['netns', 'add', name]);
  const children = new Set<ChildProcess>();
  live.set(name, children);
  let closed: Promise<void> | undefined;
  const ns: Netns = {
    name,
    exec: (cmd, args = [], options) => run('ip', ['netns', 'exec', name, cmd, ...args], options),
    spawn: (cmd, args = [], options = {}) => {
      const child = spawn('ip', ['netns', 'exec', name, cmd, ...args], options);
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
    close: () => (closed ??= closeNetns(name, children).finally(unregister)),
  };
  const unregister = registerCleanup(ns.close);
  await runOk('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return ns;
}

/**
 * Connects two namespaces with a veth pair on a fresh 10.200.x.y/30: `a` gets .1, `b`
 * gets .2 of it. IPv6 is disabled on both ends so the kernel sends nothing on its own
 * (no router solicitations, no DAD), and a packet counter reads exactly the test's traffic.
 */
export async function linkNetns(a: Netns, b: Netns): Promise<VethLink> {
  const n = nextLink++;
  if (n >= 16384) throw new Error('linkNetns: out of 10.200.0.0/16 subnets in this process');
  const base = 10 * 0x1000000 + 200 * 0x10000 + n * 4;
  const ifA = `bt${process.pid}v${n}a`;
  const ifB = `bt${process.pid}v${n}b`;
  const ends: VethLink = {
    a: { ns: a, ifname: ifA, address: ipv4(base + 1) },
    b: { ns: b, ifname: ifB, address: ipv4(base + 2) },
  };
  await runOk('ip', ['link', 'add', ifA, 'netns', a.name, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.name]);
  for (const end of [ends.a, ends.b]) {
    // Best effort: a kernel without IPv6 has no such file, and then nothing to silence.
    await end.ns.exec('sh', ['-c', `echo 1 > /proc/sys/net/ipv6/conf/${end.ifname}/disable_ipv6`]);
    await runOk('ip', ['-n', end.ns.name, 'addr', 'add', `${end.address}/30`, 'dev', end.ifname]);
    await runOk('ip', ['-n', end.ns.name, 'link', 'set', end.ifname, 'up']);
  }
  return ends;
}

/**
 * The kernel's counters of an interface inside a namespace. Read them before and after
 * a playback on the origin's end of a link: an unchanged `rxPackets` proves that not one
 * packet (not even an ARP request or a TCP SYN) reached the origin.
 */
export async function linkStats(end: Pick<LinkEnd, 'ns' | 'ifname'>): Promise<LinkStats> {
  const { stdout } = await runOk('ip', ['-n', end.ns.name, '-s', '-j', 'link', 'show', 'dev', end.ifname]);
  const [link] = JSON.parse(stdout) as { stats64: { rx: Record<string, number>; tx: Record<string, number> } }[];
  const { rx, tx } = link.stats64;
  return { rxPackets: rx.packets, txPackets: tx.packets, rxBytes: rx.bytes, txBytes: tx.bytes };
}

async function closeNetns(name: string, children: Set<ChildProcess>): Promise<void> {
  // A namespace outlives `ip netns del` while a process still runs in it: kill them first.
  await Promise.all([...children].map((child) => stopChild(child)));
  live.delete(name);
  await run('ip', ['netns', 'del', name]);
}

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`. */
export function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

// The last line of defence when a test process exits without running afterAll (a jest
// worker torn down, an uncaught error): synchronous, because nothing async runs at exit.
process.once('exit', () => {
  for (const [name, children] of live) {
    for (const child of children) child.kill('SIGKILL');
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
});
