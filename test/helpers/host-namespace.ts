import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { onPath } from '../../src/engine/host-config';
import { CLI_ENTRY } from './cli';
import { ORIGIN_SERVER_SCRIPT } from './origin';
import { testCa } from './test-ca';

/**
 * Host mode inside a private mount and network namespace (`unshare --mount --net`), so the
 * machine's own files are never touched: /etc/resolv.conf and the Debian trust store are
 * bind-mounted from temp copies, and the origins run as background processes of the script.
 */

const DEBIAN_TRUST = '/usr/local/share/ca-certificates';
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

/**
 * Temp copies of the host's resolver and trust store, and the script lines that mount them
 * over the real ones inside the namespace, bring up loopback, keep btrfly's state in `work`
 * and kill every background job and a daemon left running at exit. Origins are started after these lines.
 */
export async function namespaceHost(work: string, resolvConf: string): Promise<{ copies: string; prelude: string[] }> {
  const copies = path.join(work, 'copies');
  await fs.mkdir(path.join(copies, 'hooks'), { recursive: true });
  await fs.writeFile(path.join(copies, 'resolv.conf'), resolvConf, { mode: 0o644 });
  spawnSync('cp', ['-a', DEBIAN_TRUST, path.join(copies, 'local')]);
  spawnSync('cp', ['-a', '/etc/ssl/certs', path.join(copies, 'certs')]);
  const prelude = [
    'set -eu',
    `mount --bind ${copies}/resolv.conf /etc/resolv.conf`,
    `mount --bind ${copies}/local ${DEBIAN_TRUST}`,
    `mount --bind ${copies}/certs /etc/ssl/certs`,
    existsSync(HOOKS) ? `mount --bind ${copies}/hooks ${HOOKS}` : 'true',
    'ip link set lo up',
    `export BTRFLY_STATE_DIR=${work}/state BTRFLY_CONFIG_DIR=${work}/config`,
    // At exit, even a failed one: the origins (background jobs) and a daemon left running.
    `cleanup() { kill $(jobs -p) 2>/dev/null || true; [ ! -f ${work}/state/daemon.json ] || kill "$("${process.execPath}" -p "require('${work}/state/daemon.json').pid")" 2>/dev/null || true; }`,
    'trap cleanup EXIT',
  ];
  return { copies, prelude };
}

/** Runs the script lines with bash in a fresh mount and network namespace. */
export function inNamespace(script: readonly string[], timeoutMs = 180_000): SpawnSyncReturns<string> {
  return spawnSync('unshare', ['--mount', '--net', '--propagation', 'private', 'bash', '-c', script.join('\n')], { encoding: 'utf8', timeout: timeoutMs });
}
