/**
 * Connections a command made around btrfly, in plain command mode (no `--isolate`): clients that
 * ignore the proxy variables (Node 20's `fetch`, Go tools with their own transport, raw sockets)
 * connect straight to their servers, and what they fetch is neither recorded nor, at playback,
 * kept from the network. Seen by looking, every {@link SCAN_MS}, at the TCP sockets the command's
 * processes hold (`/proc/PID/fd` against `/proc/PID/net/tcp`): a connection that opens and closes
 * between two looks is missed, so this warns and never vouches; `--isolate` is the proof.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { parseProcNetTcp } from './isolate/proc-net';

/**
 * How often the command's sockets are looked at. A look reads each of its processes' fds, and the
 * namespace's TCP tables only when a socket is new; the reads run on libuv's threads, so the
 * proxy's thread sees only their answers.
 */
export const SCAN_MS = 500;

/** A server the command reached around btrfly. */
export interface DirectConnection {
  address: string;
  port: number;
  /** The process that held the connection, as `/proc/PID/comm` names it. */
  program: string;
}

/**
 * The kernel's TCP states: SYN sent (placed once it is established, or gone) and listening (no
 * peer). Every other state has a peer, also once the server closed its side (CLOSE_WAIT): a
 * client reading a body the kernel already buffered whole is past ESTABLISHED for most of it.
 */
const SYN_SENT = 2;
const LISTEN = 10;

const isLoopback = (address: string): boolean => address.startsWith('127.') || address === '::1';

/** Starts looking at the sockets of `pid` and its descendants; `stop` ends it and returns each server reached once. */
export function watchDirectConnections(pid: number): { stop(): DirectConnection[] } {
  const seen = new Map<string, DirectConnection>();
  // Sockets already placed (loopback, listening, or a server noted): not looked up again.
  const placed = new Set<number>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const scan = async (): Promise<void> => {
    const owners = await socketOwners(await descendants(pid));
    for (const inode of placed) if (!owners.has(inode)) placed.delete(inode);
    const unplaced = new Set([...owners.keys()].filter((i) => !placed.has(i)));
    if (unplaced.size === 0) return;
    for (const table of ['tcp', 'tcp6']) {
      const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
      for (const row of parseProcNetTcp(text, unplaced)) {
        if (row.state === SYN_SENT) continue;
        placed.add(row.inode);
        if (row.state === LISTEN || row.remote.port === 0 || isLoopback(row.remote.address)) continue;
        const key = `${row.remote.address} ${row.remote.port}`;
        if (!seen.has(key)) seen.set(key, { address: row.remote.address, port: row.remote.port, program: owners.get(row.inode)! });
      }
    }
  };
  const next = (): void => {
    if (stopped) return;
    timer = setTimeout(() => void scan().catch(() => undefined).then(next), SCAN_MS);
    timer.unref();
  };
  void scan().catch(() => undefined).then(next);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      return [...seen.values()];
    },
  };
}

/** `pid` and the processes under it (`/proc/PID/task/TID/children`); one that exits meanwhile is skipped. */
async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  let level = [pid];
  while (level.length) {
    out.push(...level);
    const children = await Promise.all(
      level.map(async (p) => {
        const tasks = await readdir(`/proc/${p}/task`).catch(() => [] as string[]);
        const lists = await Promise.all(tasks.map((t) => readFile(`/proc/${p}/task/${t}/children`, 'utf8').catch(() => '')));
        return lists.flatMap((l) => l.split(' ').filter((c) => c.trim()).map(Number));
      }),
    );
    level = children.flat();
  }
  return out;
}

/** The socket inodes the processes hold, each with the name of a process that holds it. */
async function socketOwners(pids: number[]): Promise<Map<number, string>> {
  const owners = new Map<number, string>();
  await Promise.all(
    pids.map(async (p) => {
      const fds = await readdir(`/proc/${p}/fd`).catch(() => [] as string[]);
      const links = await Promise.all(fds.map((fd) => readlink(`/proc/${p}/fd/${fd}`).catch(() => '')));
      const inodes = links.map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter((i) => i !== undefined);
      if (inodes.length === 0) return;
      const comm = (await readFile(`/proc/${p}/comm`, 'utf8').catch(() => `pid ${p}`)).trim();
      for (const i of inodes) owners.set(Number(i), comm);
    }),
  );
  return owners;
}
