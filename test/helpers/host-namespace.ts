import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { onPath } from '../../src/engine/host/config';
import { CLI_ENTRY } from './cli';
import { ORIGIN_SERVER_SCRIPT } from './origin';
import { testCa } from './test-ca';

/**
 * Host mode inside a private mount and network namespace (`unshare --mount --net`), so the
 * machine's own files are never touched: /etc/resolv.conf and the Debian trust store are
 * bind-mounted from temp copies, and the origins run as background processes of the script.
 */

/** Where Debian keeps local CAs that `update-ca-certificates` adds to the system store. */
export const DEBIAN_TRUST = '/usr/local/share/ca-certificates';
const HOOKS = '/etc/ca-certificates/update.d';

/** What this machine lacks for host-mode tests (root, tools, a Debian trust store); empty when none. */
export function hostModeMissing(extraTools: readonly string[] = []): string[] {
  return [
    process.getuid?.() === 0 ? '' : 'root',
    ...['unshare', 'mount', 'ip', 'curl', 'update-ca-certificates', 'sha256sum', ...extraTools].filter((c) => !onPath(c)),
    existsSync(DEBIAN_TRUST) && existsSync('/etc/ssl/certs') ? '' : 'a Debian trust store',
  ].filter(Boolean);
}

/** `"node" "bin/run.js"`, for btrfly commands in a namespace script. */
export const CLI_IN_SCRIPT = `"${process.execPath}" "${CLI_ENTRY}"`;

/** File name → type, mode and content hash, to prove a directory came back byte-identical. */
export async function snapshot(dir: string): Promise<Record<string, string>> {
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

/**
 * Turns one `/etc/ssl/certs/*.pem` link of the copied store into a regular file holding the
 * same certificate, as an administrator's hand-placed file would be, so that a restore that
 * let `update-ca-certificates` rebuild the links would show. Returns its name.
 */
export async function regularPemIn(copies: string): Promise<string> {
  const dir = path.join(copies, 'certs');
  for (const name of (await fs.readdir(dir)).sort()) {
    const p = path.join(dir, name);
    if (!name.endsWith('.pem') || !(await fs.lstat(p)).isSymbolicLink()) continue;
    const bytes = await fs.readFile(p);
    await fs.rm(p);
    await fs.writeFile(p, bytes, { mode: 0o644 });
    return name;
  }
  throw new Error(`no .pem link in ${dir}`);
}

/** Script lines that start `command` in the background as `$VAR` and wait for its first line of output. */
export function backgroundServer(variable: string, command: string, outFile: string): string[] {
  return [
    `${command} > ${outFile} &`,
    `${variable}=$!`,
    `for i in $(seq 100); do [ -s ${outFile} ] && break; sleep 0.1; done`,
    `[ -s ${outFile} ] || { echo "${variable} did not start" >&2; exit 1; }`,
  ];
}

/** Script lines that start origin-server.js for origin.test on 127.0.0.5:443 as `$ORIGIN`. */
export function originServerLines(work: string): string[] {
  const cert = testCa().issue(['origin.test']);
  return backgroundServer('ORIGIN', `"${process.execPath}" "${ORIGIN_SERVER_SCRIPT}" --host 127.0.0.5 --port 443 --cert ${cert.certPath} --key ${cert.keyPath}`, `${work}/origin.out`);
}

/** An origin the namespace runs on port 443 of a loopback address, for one name. */
export interface NamespaceOrigin {
  name: string;
  /** A 127.x address inside the namespace. */
  address: string;
  /** What it serves (origin-server.js `--kind`); default `files`. */
  kind?: 'files' | 'pypi' | 'npm';
}

/** A script line that stops the origins {@link namespaceHost} started (`$ORIGINS`). */
export const STOP_ORIGINS = 'kill $ORIGINS; wait $ORIGINS || true';

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
 * {@link hostCopies} and the script lines that mount them, bring up loopback, keep btrfly's
 * state in `work`, start `origins` (each on port 443 of its address with a certificate from
 * the test CA, pids in `$ORIGINS`) and kill every background job and a daemon left running
 * at exit. Other origins may be started after these lines. `upstreamFlags` are
 * `--resolve NAME:ADDR ... --upstream-ca CA` for `btrfly start record`.
 */
export async function namespaceHost(
  work: string,
  resolvConf: string,
  origins: readonly NamespaceOrigin[] = [],
): Promise<{ copies: string; prelude: string[]; upstreamFlags: string }> {
  const { copies, mounts } = await hostCopies(work, resolvConf);
  const prelude = [
    'set -eu',
    ...mounts,
    'ip link set lo up',
    `export BTRFLY_STATE_DIR=${work}/state BTRFLY_CONFIG_DIR=${work}/config`,
    // At exit, even a failed one: the origins (background jobs) and a daemon left running.
    `cleanup() { kill $(jobs -p) 2>/dev/null || true; [ ! -f ${work}/state/daemon.json ] || kill "$("${process.execPath}" -p "require('${work}/state/daemon.json').pid")" 2>/dev/null || true; }`,
    'trap cleanup EXIT',
    'ORIGINS=""',
  ];
  origins.forEach((o, i) => {
    const cert = testCa().issue([o.name]);
    const command = `"${process.execPath}" "${ORIGIN_SERVER_SCRIPT}" --kind ${o.kind ?? 'files'} --host ${o.address} --port 443 --cert ${cert.certPath} --key ${cert.keyPath}`;
    prelude.push(...backgroundServer(`ORIGIN${i}`, command, `${work}/origin-${i}.out`), `ORIGINS="$ORIGINS $ORIGIN${i}"`);
  });
  const upstreamFlags = [...origins.map((o) => `--resolve ${o.name}:${o.address}`), `--upstream-ca ${testCa().caPath}`].join(' ');
  return { copies, prelude, upstreamFlags };
}

/** Runs the script lines with bash in a fresh mount and network namespace, to completion. */
export function inNamespace(script: readonly string[], options: number | { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  const { env, timeoutMs } = typeof options === 'number' ? { env: undefined, timeoutMs: options } : options;
  return spawnSync('unshare', ['--mount', '--net', '--propagation', 'private', 'bash', '-c', script.join('\n')], {
    encoding: 'utf8',
    env,
    timeout: timeoutMs ?? 180_000,
  });
}
