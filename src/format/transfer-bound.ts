/**
 * A bound on a stalled transfer. A remote that accepts a connection and then says nothing would
 * otherwise hold `btrfly pull`, `push` and `verify --repair` for ever (git sets no timeout of its
 * own), and a repair holds the gc lock meanwhile. The bound (`btrfly.transferTimeout` in the
 * archive's git config, seconds, default {@link DEFAULT_TRANSFER_TIMEOUT}, 0 for none) is handed
 * to each transport in its own words: curl's low-speed limit for http(s) (`http.lowSpeedLimit`,
 * `http.lowSpeedTime`), OpenSSH's `ConnectTimeout` (which also bounds the banner exchange) and
 * `ServerAliveInterval` for ssh, and git-lfs's dial, TLS and activity timeouts; for http(s), a
 * connection (and TLS handshake) of btrfly's own first ({@link handshakeStalls}). What these miss (a
 * wrapper ssh command, which may not take `-o`; a server that answers btrfly's handshake and stalls
 * git's) btrfly's own watchdog catches, for any transport: a git transfer that shows no sign of life
 * for a little longer than the bound is stopped ({@link TransferBound.idleSeconds}). A transfer that
 * makes progress is not cut. See docs/notes/remotes.md, "Stalled remotes".
 */
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import { configEnv, lastGitMessage } from './git-process';

/** Seconds without a byte after which a transfer is given up, unless the archive sets another. */
export const DEFAULT_TRANSFER_TIMEOUT = 60;

/** How much longer than the bound btrfly's own watchdog waits (see {@link TransferBound.idleSeconds}). */
const IDLE_GRACE = 2;

/** The archive's git config key that sets the bound. */
export const TRANSFER_TIMEOUT_KEY = 'btrfly.transferTimeout';

/**
 * The longest bound in force, in seconds (24.8 days): the longest a Node timer waits (a longer
 * one fires at once) and within git's int for `http.lowSpeedTime`. A longer setting means this.
 */
export const MAX_TRANSFER_TIMEOUT = Math.floor(0x7fffffff / 1000);

/** The bound in force for an archive, and the environment that hands it to git, ssh and git-lfs. */
export interface TransferBound {
  /** Seconds; 0 when the archive turned the bound off. */
  seconds: number;
  /**
   * Seconds after which btrfly stops a git transfer that shows no sign of life at all (see
   * `Git.transfer`'s `idleSeconds`), whatever its transport; 0 for none. A little over the bound, so
   * that a transport bound in its own words (curl, OpenSSH) says first what it saw.
   */
  idleSeconds: number;
  env: NodeJS.ProcessEnv;
  /** git reaches https remotes through a proxy (git config or environment): btrfly's own handshake would not. */
  proxied: boolean;
  /** The remotes git reaches through a proxy of their own (`remote.<name>.proxy`). */
  proxiedRemotes: ReadonlySet<string>;
}

/**
 * Reads the bound from the archive's config (with the user's own `core.sshCommand`, which the
 * ssh options are added to) and returns the environment for a transfer.
 */
export async function transferBound(archive: Archive): Promise<TransferBound> {
  const r = await archive.git.run(['config', '--get-regexp', '^(btrfly\\.transfertimeout|core\\.sshcommand|http\\..*proxy|remote\\..*\\.proxy)$'], { ok: [0, 1] });
  let seconds = DEFAULT_TRANSFER_TIMEOUT;
  let sshCommand: string | undefined;
  let proxied = ['https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'].some((v) => process.env[v]);
  const proxiedRemotes = new Set<string>();
  let setting: string | undefined;
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const sp = line.indexOf(' ');
    const [key, value] = sp < 0 ? [line, ''] : [line.slice(0, sp), line.slice(sp + 1)];
    if (key === 'core.sshcommand') sshCommand = value;
    else if (key.startsWith('http.')) proxied ||= value.trim() !== '';
    else if (key.startsWith('remote.')) {
      if (value.trim() !== '') proxiedRemotes.add(key.slice('remote.'.length, -'.proxy'.length));
    } else setting = value;
  }
  // The last one set wins, as in git (the archive's own over the user's global one).
  if (setting !== undefined) seconds = parseSeconds(archive, setting);
  if (seconds === 0) return { seconds, idleSeconds: 0, env: {}, proxied, proxiedRemotes };
  const config: Array<[string, string]> = [
    ['http.lowSpeedLimit', '1'],
    ['http.lowSpeedTime', String(seconds)],
    ['lfs.dialtimeout', String(seconds)],
    ['lfs.tlstimeout', String(seconds)],
    ['lfs.activitytimeout', String(seconds)],
  ];
  const env: NodeJS.ProcessEnv = { ...configEnv(config) };
  const ssh = withSshBound(process.env.GIT_SSH_COMMAND ?? sshCommand ?? (process.env.GIT_SSH ? undefined : 'ssh'), seconds);
  if (ssh) env.GIT_SSH_COMMAND = ssh;
  return { seconds, idleSeconds: Math.min(seconds + IDLE_GRACE, MAX_TRANSFER_TIMEOUT), env, proxied, proxiedRemotes };
}

/**
 * The bound as set: a whole number of seconds (0 for none), at most {@link MAX_TRANSFER_TIMEOUT}.
 * @throws BtrflyError CONFIG for anything else ("abc", -1, 1e9, "1m"), rather than a bound the user did not set
 */
function parseSeconds(archive: Archive, value: string): number {
  const v = value.trim();
  if (!/^\d+$/.test(v)) {
    throw new BtrflyError(
      'CONFIG',
      `${TRANSFER_TIMEOUT_KEY} is "${value}" in the archive's git config, not a whole number of seconds: ` +
        `set it with "git --git-dir ${archive.dir} config ${TRANSFER_TIMEOUT_KEY} SECONDS" (0: wait for ever), or drop it for the default ${DEFAULT_TRANSFER_TIMEOUT} s`,
      { data: { key: TRANSFER_TIMEOUT_KEY, value } },
    );
  }
  return Math.min(Number(v), MAX_TRANSFER_TIMEOUT);
}

/**
 * For an http(s) remote, a connection of btrfly's own within the bound (for https, with its TLS
 * handshake): curl's low-speed check only starts once it is connected (and its handshake done),
 * and git has no setting for curl's connect timeout (300 s), so a host that drops the connection
 * attempts (a firewall) or takes the connection and never answers the handshake would hold git
 * for five minutes whatever the bound. Resolves with what went wrong when it did not end in time,
 * else undefined (a refusal or a certificate git would not take is left for git to tell).
 */
export async function handshakeStalls(remote: string, url: string, bound: TransferBound, signal?: AbortSignal): Promise<string | undefined> {
  const scheme = /^(https?):\/\//i.exec(url)?.[1].toLowerCase();
  if (!bound.seconds || !scheme || bound.proxied || bound.proxiedRemotes.has(remote)) return undefined;
  // curl's proxy for http:// URLs (https_proxy, in bound.proxied, is for https:// ones).
  if (scheme === 'http' && (process.env.http_proxy || process.env.HTTP_PROXY)) return undefined;
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return undefined;
  }
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const port = Number(target.port || (scheme === 'https' ? 443 : 80));
  return new Promise((resolve, reject) => {
    const socket =
      scheme === 'https' ? tlsConnect({ host, port, servername: isIP(host) ? undefined : host, rejectUnauthorized: false }) : netConnect({ host, port });
    const done = (outcome?: string, error?: unknown): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
      socket.destroy();
      if (error) reject(error as Error);
      else resolve(outcome);
    };
    const aborted = (): void => done(undefined, signal!.reason);
    const what = scheme === 'https' ? 'no TLS handshake with' : 'no connection to';
    const timer = setTimeout(() => done(`${what} ${target.host} within ${bound.seconds} s`), bound.seconds * 1000);
    signal?.addEventListener('abort', aborted, { once: true });
    socket.once(scheme === 'https' ? 'secureConnect' : 'connect', () => done());
    socket.once('error', () => done());
  });
}

/**
 * The ssh command with OpenSSH's timeouts added; undefined (left as the user has it) for a command
 * that is not OpenSSH's `ssh` (plink, a wrapper script), which may not take `-o`.
 */
function withSshBound(command: string | undefined, seconds: number): string | undefined {
  if (!command) return undefined;
  const program = command.trim().split(/\s+/)[0].replace(/^["']|["']$/g, '');
  if (!/(^|\/)ssh$/.test(program)) return undefined;
  const alive = Math.max(1, Math.ceil(seconds / 3));
  return `${command} -o ConnectTimeout=${seconds} -o ServerAliveInterval=${alive} -o ServerAliveCountMax=3`;
}

/** git's, ssh's or git-lfs's words for a transfer given up by the bound. */
export function isStall(stderr: string): boolean {
  return /Operation too slow|Connection timed out during banner exchange|timed out|SSL connection timeout|Timeout, server .* not responding|i\/o timeout|context deadline exceeded/i.test(stderr);
}

/**
 * A transfer the bound gave up on: the remote took the connection (or never did) and then sent
 * nothing for the bound's length.
 */
export function stalled(archive: Archive, remote: string, what: string, seconds: number, said: string, cause?: unknown): BtrflyError {
  return new BtrflyError(
    'NETWORK',
    `${what} remote ${remote} stalled: no answer for ${seconds} s (${lastGitMessage(said)}): check that the remote is up and reachable and run the command again, ` +
      `or give it longer with "git --git-dir ${archive.dir} config ${TRANSFER_TIMEOUT_KEY} SECONDS" (0: wait for ever)`,
    { cause, data: { remote, stalled: true, seconds, stderr: said } },
  );
}
