import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { BtrflyError, EXIT } from '../../errors';
import { Archive } from '../../format/archive';
import type { MatchRule } from '../../format/types';
import { storageFailure } from '../../format/disk-space';
import { asideAdvice, isNoSpace } from '../../format/lifecycle';
import { pauseAt } from '../../test-pause';
import { configDir } from '../base/config-dir';
import { childEnvironment } from './child-env';
import { publishRunStatus } from './run-status';
import { watchDirectConnections, type DirectConnection } from './direct-connections';
import { startIsolation, type Isolation, type Leak } from './isolate/isolated-run';
import { playbackExitCode, type Mode } from '../proxy/session';
import { Runtime, type SessionResult } from '../session/runtime';
import type { UpstreamOptions } from '../proxy/upstream';
import type { Logger } from '../base/log';

export interface RunOptions {
  archiveDir: string;
  mode: Mode;
  tag: string;
  append?: boolean;
  command: string[];
  upstream?: UpstreamOptions;
  redactHeaders?: string[];
  redactQuery?: string[];
  keepQuery?: string[];
  rules?: MatchRule[];
  /** Seal the recording even when the command fails (default: keep it aside, the tag unchanged). */
  sealOnFailure?: boolean;
  /** Run the command in its own network namespace whose only way out is btrfly (run-isolate). */
  isolate?: boolean;
  /** With isolate: what btrfly could not carry does not fail the run. */
  allowLeaks?: boolean;
  /** Where progress and the summary go (stderr). */
  report: (line: string) => void;
  logger?: Logger;
}

export interface RunResult {
  exitCode: number;
  result: SessionResult;
  /** With isolate: what the command tried that btrfly could not carry (it never left). */
  leaks?: Leak[];
}

/**
 * Command mode: starts a runtime on loopback, runs the command with the proxy and CA
 * environment (docs/contract.md, "Trust and proxy settings"), then seals the recording or reports the playback's misses.
 * The exit status is the command's, or 1 when a played-back body was damaged, or 3 when the playback missed.
 */
export async function runCommand(opts: RunOptions): Promise<RunResult> {
  if (opts.command.length === 0) throw new BtrflyError('USAGE', 'no command to run: put it after "--", like btrfly run --record --tag=T -- ./build.sh');
  // The config directory (the CA) and the work directory first: one that cannot be made (no
  // HOME, a missing TMPDIR) fails the run before an archive is made.
  const config = configDir();
  const work = await makeWorkDir();
  const archive = await Archive.open(opts.archiveDir, { create: opts.mode === 'record' }).catch(async (e: unknown) => {
    await rm(work, { recursive: true, force: true });
    throw e;
  });
  let runtime: Runtime | undefined;
  let isolation: Promise<Isolation> | undefined;
  let unpublish: (() => Promise<void>) | undefined;
  try {
    runtime = await Runtime.start({ archive, upstream: opts.upstream, logger: opts.logger, configDir: config });
    // The namespace needs only the proxy's port: made while the session opens and the child's
    // environment is written (docs/decisions.md, "Isolated command mode").
    isolation = opts.isolate ? startIsolation({ proxy: runtime.proxy, workDir: work }) : undefined;
    isolation?.catch(() => undefined); // its failure is thrown where it is awaited below
    const opened = await runtime.openSession({
      tag: opts.tag,
      mode: opts.mode,
      append: opts.append,
      redactHeaders: opts.redactHeaders,
      redactQuery: opts.redactQuery,
      keepQuery: opts.keepQuery,
      rules: opts.rules,
      notice: (line) => opts.report(`btrfly: ${line}`),
    });
    if (opts.mode === 'record' || opts.append) {
      for (const p of await archive.asideRecordings(opened.info.tag)) opts.report(`btrfly: note: ${asideAdvice(p)}`);
    }
    const ownProxy = opts.mode === 'record' && !opts.upstream?.proxy ? userProxyVariable() : undefined;
    if (ownProxy) opts.report(`btrfly: note: ${ownProxy} is set: the command's proxy is btrfly for this run, and btrfly goes to the network directly; to go through your proxy, pass --upstream-proxy with its URL`);
    unpublish = await publishRunStatus(work, archive.dir, () => runtime!.status());
    await pauseAt('run-child');
    const env = await childEnvironment({ proxyUrl: opened.proxyUrl!, caPem: runtime.ca.certPem, workDir: work });
    const childEnv = { ...process.env, ...env, BTRFLY_SESSION: opened.info.id, BTRFLY_TAG: opened.info.tag };
    const child: ChildOutcome & { leaks?: Leak[] } = opts.isolate
      ? await (await isolation!).run(opts.command, childEnv, opened.info.id)
      : await runChild(opts.command, childEnv);
    if (child.problem) opts.report(`btrfly: ${child.problem}`);
    for (const line of summarizeDirect(child.direct ?? [], opts.mode === 'record' || !!opts.append)) opts.report(line);
    // A recording with leaks lacks what they would have fetched: it never becomes the tag, even
    // with --seal-on-failure (--allow-leaks is the flag that accepts them), and the run fails
    // with 1 when the command itself succeeded (docs/decisions.md, "Leaks hold a recording back").
    const leaks = opts.allowLeaks ? 0 : (child.leaks?.length ?? 0);
    const code = leaks > 0 && child.code === 0 ? EXIT.failure : child.code;
    // A failed build keeps the tag (docs/archive-format.md, atomic tags): its recording is kept aside.
    const keepAside = leaks > 0 || (child.code !== 0 && !opts.sealOnFailure) ? child.code : undefined;
    const result = await runtime.closeSession(opened.info.id, { program: opts.command[0], keepAside, ...(leaks > 0 ? { leaks } : {}) });
    const readOnly = opts.mode === 'playback' ? archive.readOnlyNote() : undefined;
    if (readOnly) opts.report(`btrfly: note: ${readOnly}`);
    const exitCode = (opts.mode === 'playback' ? playbackExitCode(result) : undefined) ?? code;
    return { exitCode, result, leaks: child.leaks };
  } catch (e) {
    // A storage failure is btrfly's, whatever the command did: exit 1 with where and what to free.
    throw isNoSpace(e) ? await storageFailure(archive.dir, e) : e;
  } finally {
    // A run that failed before its command (an unknown tag) ends the helper it started; after a
    // run, ending it again is harmless.
    await unpublish?.();
    await isolation?.then((i) => i.abort(), () => undefined);
    await runtime?.close().catch(() => {});
    await archive.close();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The user's own proxy variable, when one is set: the command gets btrfly's proxy in its place
 * (child-env.ts), and btrfly itself does not read it (`--upstream-proxy` is how it goes through
 * one), so behind a proxy that is the only way out a recording would fail to connect unexplained.
 */
function userProxyVariable(): string | undefined {
  return ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy'].find((v) => process.env[v]);
}

/**
 * The run's work directory (the CA bundle, the status file) in the system's temp directory,
 * TMPDIR when set: a TMPDIR that is missing or not writable (a CI runner's, a container's) is
 * said in one line with what to set, not as mkdtemp's error.
 */
async function makeWorkDir(): Promise<string> {
  const base = os.tmpdir();
  try {
    return await mkdtemp(path.join(base, 'btrfly-run-'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    const why = { ENOENT: 'it does not exist', ENOTDIR: 'it is not a directory', EACCES: 'permission denied', EPERM: 'permission denied', EROFS: 'read-only file system', ENOSPC: 'no space left on device' }[code];
    const from = process.env.TMPDIR ? 'TMPDIR' : 'the temp directory';
    throw new BtrflyError('CONFIG', `cannot make the run's work directory in ${from} ${base}: ${why ? `${why} (${code})` : `mkdtemp failed (${code})`}: set TMPDIR to a directory you can write`, { cause: e, data: { dir: base } });
  }
}

/** The child's exit status; a command that could not start is a failure (127 when not found, as a shell says). */
interface ChildOutcome {
  code: number;
  problem?: string;
  /** Without --isolate: the servers the command was seen connecting to around btrfly. */
  direct?: DirectConnection[];
}

/** Runs the child with inherited stdio, forwarding Ctrl-C and termination; resolves with its exit status. */
function runChild(command: string[], env: NodeJS.ProcessEnv): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env });
    const watch = child.pid === undefined ? undefined : watchDirectConnections(child.pid);
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    const done = () => {
      for (const [s, h] of handlers) process.off(s, h);
    };
    child.once('error', (e: NodeJS.ErrnoException) => {
      done();
      watch?.stop();
      resolve(
        e.code === 'ENOENT'
          ? { code: 127, problem: `command not found: ${command[0]}: check the command after "--"` }
          : { code: 126, problem: `cannot run ${command[0]}: ${e.message}` },
      );
    });
    child.once('exit', (code, signal) => {
      done();
      resolve({ code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1), direct: watch?.stop() });
    });
  });
}

/**
 * The end-of-run lines for the servers a command (without --isolate) reached around btrfly: a
 * warning, not a failure, since a connection may be meant (a database on the network) and a short
 * one may have gone unseen.
 */
export function summarizeDirect(direct: DirectConnection[], recorded: boolean): string[] {
  if (direct.length === 0) return [];
  return [
    `btrfly: warning: the command connected to ${direct.length} server(s) around btrfly, so ${recorded ? 'what it fetched there is not in the recording' : 'the playback did not keep it from the network'}:`,
    ...direct.map((d) => `  ${d.address.includes(':') ? `[${d.address}]` : d.address}:${d.port} (${d.program})`),
    'btrfly: make those clients use HTTPS_PROXY and HTTP_PROXY, or run with --isolate, which records them (and names what it cannot carry)',
  ];
}

/**
 * The end-of-run lines for what an isolated command tried that btrfly could not carry.
 * `recorded`: the run recorded (--record, or --playback --append), so its recording was held back.
 */
export function summarizeLeaks(leaks: Leak[], allowed: boolean, recorded: boolean): string[] {
  if (leaks.length === 0) return [];
  return [
    leaks.some((l) => l.uncounted)
      ? 'btrfly: connections btrfly cannot carry were refused inside the namespace, and not all of them were counted (nothing reached the network):'
      : `btrfly: ${leaks.length} connection(s) btrfly cannot carry were refused inside the namespace (nothing reached the network):`,
    ...leaks.map((l) => `  ${l.protocol} ${l.address.includes(':') ? `[${l.address}]` : l.address}${l.port !== undefined ? `:${l.port}` : ''}: ${l.reason}`),
    allowed
      ? 'btrfly: --allow-leaks: the run does not fail for them'
      : recorded
        ? 'btrfly: the recording would miss what they fetch, so it did not become the tag and the run fails: remove them from the build, or accept them with --allow-leaks'
        : 'btrfly: the playback cannot answer them, so the run fails: remove them from the build, or accept them with --allow-leaks',
  ];
}
