import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { onPath } from '../../src/engine/host-config';
import { ORIGIN_SERVER_SCRIPT } from './origin';
import { testCa } from './test-ca';

/**
 * Host mode without touching the host: a script runs inside `unshare --mount --net` with
 * temp copies of /etc/resolv.conf and the Debian trust store bind-mounted over the real
 * ones, so `btrfly start` may change "the system" and the machine's own files never move.
 */

/** Where Debian keeps local CAs that `update-ca-certificates` adds to the system store. */
export const DEBIAN_TRUST = '/usr/local/share/ca-certificates';
const HOOKS = '/etc/ca-certificates/update.d';

/** The system's CA bundle file on Debian, which `update-ca-certificates` regenerates. */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** A script line that stops the namespace's origins (started by {@link namespaceHost}). */
export const STOP_ORIGINS = 'kill $ORIGINS; wait $ORIGINS || true';

/** What this machine lacks to run host mode in a namespace (empty when it can). */
export function hostNamespaceMissing(extraCommands: readonly string[] = []): string[] {
  return [
    process.getuid?.() === 0 ? '' : 'root',
    ...['unshare', 'mount', 'ip', 'update-ca-certificates', ...extraCommands].filter((c) => !onPath(c)),
    existsSync(DEBIAN_TRUST) && existsSync('/etc/ssl/certs') ? '' : 'a Debian trust store',
  ].filter(Boolean);
}

/** An origin the namespace runs on port 443 of a loopback address, for one name. */
export interface NamespaceOrigin {
  name: string;
  /** A 127.x address inside the namespace. */
  address: string;
  /** What it serves (origin-server.js `--kind`); default `files`. */
  kind?: 'files' | 'pypi' | 'npm';
}

/** A namespace host: the copies to compare after the run, and the script lines that set it up. */
export interface NamespaceHost {
  /** The directory holding the copies of resolv.conf and the trust store. */
  copies: string;
  /** Script lines: mount the copies, bring up lo, start the origins (pids in `$ORIGINS`). */
  prelude: string[];
  /** `--resolve NAME:ADDR --upstream-ca CA` for `btrfly start record`. */
  upstreamFlags: string;
}

/**
 * Temp copies of the host's resolver (with `resolvConf` as its content) and Debian trust
 * store under `<work>/copies`, and the script lines that bind-mount them over the real ones
 * inside a private mount namespace. The update hooks (Java's keystore trigger) are masked
 * by an empty directory: they would write to dpkg's state outside these copies.
 */
export async function hostCopies(work: string, resolvConf: string): Promise<{ copies: string; mounts: string[] }> {
  const copies = path.join(work, 'copies');
  await fs.mkdir(path.join(copies, 'hooks'), { recursive: true });
  await fs.writeFile(path.join(copies, 'resolv.conf'), resolvConf, { mode: 0o644 });
  spawnSync('cp', ['-a', DEBIAN_TRUST, path.join(copies, 'local')]);
  spawnSync('cp', ['-a', '/etc/ssl/certs', path.join(copies, 'certs')]);
  const mounts = [
    `mount --bind ${copies}/resolv.conf /etc/resolv.conf`,
    `mount --bind ${copies}/local ${DEBIAN_TRUST}`,
    `mount --bind ${copies}/certs /etc/ssl/certs`,
    existsSync(HOOKS) ? `mount --bind ${copies}/hooks ${HOOKS}` : 'true',
  ];
  return { copies, mounts };
}

/**
 * {@link hostCopies}, and the script lines that mount them, bring up loopback and start the
 * origins (default one for `origin.test` on 127.0.0.5:443), each with a certificate from
 * the test CA, their pids in `$ORIGINS`.
 */
export async function namespaceHost(
  work: string,
  resolvConf: string,
  origins: readonly NamespaceOrigin[] = [{ name: 'origin.test', address: '127.0.0.5' }],
): Promise<NamespaceHost> {
  const { copies, mounts } = await hostCopies(work, resolvConf);
  const prelude = [
    'set -eu',
    ...mounts,
    'ip link set lo up',
    `export BTRFLY_STATE_DIR=${work}/state BTRFLY_CONFIG_DIR=${work}/config`,
    'ORIGINS=""',
    "trap 'kill $ORIGINS 2>/dev/null || true' EXIT", // single quotes: $ORIGINS as it is at exit
  ];
  origins.forEach((o, i) => {
    const cert = testCa().issue([o.name]);
    const out = `${work}/origin-${i}.out`;
    prelude.push(
      `"${process.execPath}" "${ORIGIN_SERVER_SCRIPT}" --kind ${o.kind ?? 'files'} --host ${o.address} --port 443 --cert ${cert.certPath} --key ${cert.keyPath} > ${out} &`,
      'ORIGINS="$ORIGINS $!"',
      `for i in $(seq 50); do [ -s ${out} ] && break; sleep 0.1; done`,
    );
  });
  const upstreamFlags = [...origins.map((o) => `--resolve ${o.name}:${o.address}`), `--upstream-ca ${testCa().caPath}`].join(' ');
  return { copies, prelude, upstreamFlags };
}

/** Runs a bash script in a new private mount and network namespace, to completion. */
export function inHostNamespace(script: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync('unshare', ['--mount', '--net', '--propagation', 'private', 'bash', '-c', script.join('\n')], {
    encoding: 'utf8',
    env: options.env,
    timeout: options.timeoutMs ?? 180_000,
  });
}

/**
 * Every entry under `dir` (recursively, sorted): type, mode and the SHA-256 of a file's
 * bytes, a symlink's target. Two equal snapshots are byte-identical trees.
 */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(dir, { recursive: true })).sort()) {
    const p = path.join(dir, name);
    const st = await fs.lstat(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[name] = `link -> ${await fs.readlink(p)}`;
    else if (st.isDirectory()) out[name] = `dir ${mode}`;
    else out[name] = `file ${mode} ${createHash('sha256').update(await fs.readFile(p)).digest('hex')}`;
  }
  return out;
}
