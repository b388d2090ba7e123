/**
 * The original destination of a connection redirected (nft `redirect`) inside an isolated
 * command's network namespace. Node has no getsockopt(SO_ORIGINAL_DST), but NAT does not
 * change the client's own socket: in `/proc/PID/net/tcp` (PID inside the namespace) the
 * client socket whose local address is the accepted socket's remote address still shows the
 * address and port it connected to.
 */
import { readFile } from 'node:fs/promises';

/** One row of /proc/net/tcp or tcp6: local and remote endpoints, the kernel's state and the socket's inode. */
export interface TcpRow {
  local: { address: string; port: number };
  remote: { address: string; port: number };
  /** The kernel's TCP state: 1 established, 2 SYN sent, 10 listening, … */
  state: number;
  inode: number;
}

/**
 * Parses the text of /proc/net/tcp or /proc/net/tcp6 (addresses in the kernel's hex, host byte order per 32-bit word).
 * @param inodes only the rows of these sockets (a busy host's table has thousands)
 */
export function parseProcNetTcp(text: string, inodes?: ReadonlySet<number>): TcpRow[] {
  const rows: TcpRow[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || (inodes && !inodes.has(Number(f[9])))) continue;
    const local = endpoint(f[1]);
    const remote = endpoint(f[2]);
    if (local && remote) rows.push({ local, remote, state: parseInt(f[3], 16), inode: Number(f[9]) });
  }
  return rows;
}

function endpoint(field: string): { address: string; port: number } | undefined {
  const [hex, port] = field.split(':');
  if (!hex || !port) return undefined;
  return { address: hexAddress(hex), port: parseInt(port, 16) };
}

/** The kernel prints each 32-bit word of the address in host (little-endian) byte order. */
function hexAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  const v6 = groups.join(':');
  const mapped = /^0:0:0:0:0:ffff:([0-9a-f]+):([0-9a-f]+)$/.exec(v6);
  if (mapped) {
    const hi = parseInt(mapped[1], 16);
    const lo = parseInt(mapped[2], 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  // The WHATWG URL parser writes an IPv6 address in its canonical, compressed form.
  return new URL(`http://[${v6}]/`).hostname.slice(1, -1);
}

/** The address the client at `source` connected to, from the rows of its namespace; undefined when it is gone. */
export function originalDestination(rows: TcpRow[], source: { address: string; port: number }, listener: { address: string; port: number }): { address: string; port: number } | undefined {
  const row = rows.find(
    (r) => r.local.port === source.port && r.local.address === source.address && !(r.remote.port === listener.port && r.remote.address === listener.address),
  );
  return row?.remote;
}

/** Reads the TCP tables of the namespace process `pid` holds. */
export async function readTcpRows(pid: number): Promise<TcpRow[]> {
  const texts = await Promise.all(['tcp', 'tcp6'].map((t) => readFile(`/proc/${pid}/net/${t}`, 'utf8').catch(() => '')));
  return texts.flatMap((t) => parseProcNetTcp(t));
}
