import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { BtrflyError, EXIT } from '../errors';
import { Archive } from '../format/archive';
import type { MatchRule } from '../format/types';
import { childEnvironment } from './child-env';
import { runIsolated, type Leak } from './isolate/isolated-run';
import type { Mode } from './session';
import { Runtime, type SessionResult } from './runtime';
import type { UpstreamOptions } from './upstream';

export interface RunOptions {
  archiveDir: string;
  mode: Mode;
  tag: string;
  append?: boolean;
  command: string[];
  upstream?: UpstreamOptions;
  redactHeaders?: string[];
  redactQuery?: string[];
  rules?: MatchRule[];
  /** Run the command in its own network namespace whose only way out is btrfly (run-isolate). */
  isolate?: boolean;
  /** With isolate: what btrfly could not carry does not fail the run. */
  allowLeaks?: boolean;
  /** Where progress and the summary go (stderr). */
  report: (line: string) => void;
  log?: (msg: string, data?: Record<string, unknown>) => void;
}

export interface RunResult {
  exitCode: number;
  result: SessionResult;
  /** With isolate: what the command tried that btrfly could not carry (it never left). */
  leaks?: Leak[];
}

/**
 * Command mode: starts a runtime on loopback, runs the command with the proxy and CA
 * environment (SPEC section 6), then seals the recording or reports the playback's misses.
 * The exit status is the command's, or 3 when the playback missed.
 */
export async function runCommand(opts: RunOptions): Promise<RunResult> {
  if (opts.command.length === 0) throw new BtrflyError('USAGE', 'no command to run: put it after "--", like btrfly run --record --tag=T -- ./build.sh');
  const archive = await Archive.open(opts.archiveDir, { create: opts.mode === 'record' });
  const work = await mkdtemp(path.join(os.tmpdir(), 'btrfly-run-'));
  let runtime: Runtime | undefined;
  try {
    runtime = await Runtime.start({ archive, upstream: opts.upstream, log: opts.log });
    const opened = await runtime.openSession({
      tag: opts.tag,
      mode: opts.mode,
      append: opts.append,
      redactHeaders: opts.redactHeaders,
      redactQuery: opts.redactQuery,
      rules: opts.rules,
    });
    const env = await childEnvironment({ proxyUrl: opened.proxyUrl!, caPem: runtime.ca.certPem, workDir: work });
    const childEnv = { ...process.env, ...env, BTRFLY_SESSION: opened.info.id, BTRFLY_TAG: opened.info.tag };
    const { code, leaks } = opts.isolate
      ? await runIsolated({ command: opts.command, env: childEnv, proxy: runtime.proxy, sessionId: opened.info.id, workDir: work })
      : { code: await runChild(opts.command, childEnv), leaks: undefined };
    // A recording with leaks lacks what they would have fetched: it does not move the tag.
    const leaked = !!leaks?.length && !opts.allowLeaks;
    const childCode = leaked && code === 0 ? EXIT.failure : code;
    const result = await runtime.closeSession(opened.info.id, {
      discard: leaked && opts.mode === 'record',
      message: `record ${opened.info.tag}: ${opts.command.join(' ').slice(0, 200)}`,
    });
    const exitCode = opts.mode === 'playback' && result.misses.length > 0 ? EXIT.miss : childCode;
    return { exitCode, result, leaks };
  } finally {
    await runtime?.close().catch(() => {});
    await archive.close();
    await rm(work, { recursive: true, force: true });
  }
}

/** Runs the child with inherited stdio, forwarding Ctrl-C and termination; resolves with its exit status. */
function runChild(command: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    const done = () => {
      for (const [s, h] of handlers) process.off(s, h);
    };
    child.once('error', (e: NodeJS.ErrnoException) => {
      done();
      reject(new BtrflyError('USAGE', e.code === 'ENOENT' ? `command not found: ${command[0]}: check the command after "--"` : `cannot run ${command[0]}: ${e.message}`));
    });
    child.once('exit', (code, signal) => {
      done();
      resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1));
    });
  });
}

/** The end-of-run summary (stderr): tag, recording, requests, bytes, hits, misses, and each miss. */
export function summarize(mode: Mode, r: SessionResult, unused: boolean): string[] {
  const s = r.info.stats;
  const id = (r.commit ?? r.info.rev ?? '').slice(0, 12);
  const lines =
    mode === 'record'
      ? [`btrfly: recorded tag "${r.info.tag}" (recording ${id || 'none'}): ${s.requests} requests, ${s.recorded} entries, ${formatBytes(s.bytes)}${s.upstreamErrors ? `, ${s.upstreamErrors} upstream errors` : ''}`]
      : [`btrfly: played back tag "${r.info.tag}" (recording ${(r.info.rev ?? '').slice(0, 12)}): ${s.requests} requests, ${formatBytes(s.bytes)}, ${s.hits} hits, ${s.misses} misses`];
  if (mode === 'playback' && r.commit) lines.push(`btrfly: --append recorded ${s.recorded} missing entr${s.recorded === 1 ? 'y' : 'ies'} as recording ${r.commit.slice(0, 12)} of tag "${r.info.tag}"`);
  if (r.misses.length > 0) {
    lines.push(`btrfly: ${r.misses.length} request(s) missed (not in the recording):`);
    for (const m of r.misses) {
      lines.push(`  ${m.method} ${m.url}`);
      for (const n of m.nearest) lines.push(`    nearest: ${n}`);
    }
    lines.push(`btrfly: re-record with "btrfly run --record --append --tag=${r.info.tag} -- ..." or make the build request what was recorded`);
  }
  if (unused && r.unused && r.unused.length > 0) {
    lines.push(`btrfly: ${r.unused.length} recorded entr${r.unused.length === 1 ? 'y' : 'ies'} nothing asked for:`);
    for (const e of r.unused) lines.push(`  ${e.request.method} ${e.request.url}`);
  }
  return lines;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** The end-of-run lines for what an isolated command tried that btrfly could not carry. */
export function summarizeLeaks(leaks: Leak[], allowed: boolean): string[] {
  if (leaks.length === 0) return [];
  return [
    `btrfly: ${leaks.length} connection(s) btrfly cannot carry were refused inside the namespace (nothing reached the network):`,
    ...leaks.map((l) => `  ${l.protocol} ${l.address.includes(':') ? `[${l.address}]` : l.address}${l.port !== undefined ? `:${l.port}` : ''}: ${l.reason}`),
    allowed
      ? 'btrfly: --allow-leaks: the run does not fail for them'
      : 'btrfly: the recording would miss what they fetch, so the tag was not moved: remove them from the build, or accept them with --allow-leaks',
  ];
}
