import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as lockfile from 'proper-lockfile';
import { BtrflyError, EXIT, oneLine } from '../../errors';
import { Archive } from '../../format/archive';
import type { PendingRecording } from '../../format/archive';
import { asideAdvice, type AsideRecording } from '../../format/lifecycle';
import type { MatchRule } from '../../format/types';
import { CertificateAuthority } from '../tls/ca';
import { controlRequest, DAEMON_UPSTREAM_PROXY_ENV, ensureDaemon, findDaemon, shutdownDaemon, type DaemonInfo } from './daemon-client';
import { HostConfigurator, detectHostPaths, type HostPaths } from './config';
import type { OpenedSession, SessionResult } from '../session/runtime';
import type { RegisteredSession } from '../service/service';
import { readLogin, serviceRequest, type Login } from '../service/service-client';
import { playbackExitCode, type Mode, type SessionInfo } from '../proxy/session';
import type { UpstreamOptions } from '../proxy/upstream';
import { sealPending } from '../../format/recording-writer';

/** The host-mode session the CLI started, kept in the state dir so that `stop` finds it after a crash or reboot. */
export interface HostSessionFile {
  id: string;
  tag: string;
  mode: Mode;
  since: string;
  archive: string;
  /** Service mode: the session lives on this btrfly service, not on a local daemon. */
  service?: string;
}

const HOST_SESSION = 'host-session.json';

export interface StartHostOptions {
  mode: Mode;
  tag: string;
  append?: boolean;
  archiveDir: string;
  upstream: UpstreamOptions;
  redactHeaders?: string[];
  redactQuery?: string[];
  keepQuery?: string[];
  rules?: MatchRule[];
  env?: NodeJS.ProcessEnv;
}

export interface StopHostOptions {
  mode: Mode;
  archiveDir: string;
  /** After a crash: make what the recording had completed the tag / drop it. */
  sealPartial?: boolean;
  discard?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface StopHostResult {
  result?: SessionResult;
  /** What became of a recording whose daemon died. */
  partial?: string;
  restored: string[];
  /** A daemon that held no session (a start interrupted, a daemon run by hand), stopped by this `stop`. */
  idleDaemonStopped?: { pid: number; archive: string };
  exitCode: number;
}

/** The daemon's listen settings: a dedicated loopback address and the standard ports. */
function daemonSettings(env: NodeJS.ProcessEnv) {
  return {
    address: env.BTRFLY_DAEMON_ADDRESS || '127.77.0.1',
    proxyPort: Number(env.BTRFLY_PROXY_PORT || 3128),
  };
}

/**
 * `btrfly start record|playback --tag=T`: starts the daemon unless it runs, opens a session
 * for this host's own addresses, then points the resolver at btrfly's DNS and trusts its CA.
 * Anything that fails half way is undone.
 */
export async function startHostSession(o: StartHostOptions): Promise<{ session: OpenedSession; daemonAddress: string; notes: string[] }> {
  const env = o.env ?? process.env;
  const paths = detectHostPaths(env);
  return underHostLock(paths, () => startLocked(o, env, paths));
}

/**
 * Start and stop change the same files (the resolver, the trust store, the journal, the session
 * file): one at a time. Two at once undid each other: the refused one restored the host under
 * the other's live session. A second waits, then finds what the first did. Without root nothing
 * of the host can change, and the permission error comes from the step that needs it.
 */
async function underHostLock<T>(paths: Pick<HostPaths, 'stateDir'>, fn: () => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0) return fn();
  await mkdir(paths.stateDir, { recursive: true, mode: 0o700 });
  const release = await lockfile
    .lock(paths.stateDir, { realpath: false, lockfilePath: path.join(paths.stateDir, 'host.lock'), stale: 10_000, retries: { retries: 1200, minTimeout: 20, maxTimeout: 100 } })
    .catch((e: unknown) => {
      throw new BtrflyError('LOCKED', `another "btrfly start" or "btrfly stop" is changing this host (${oneLine(e)}): let it finish, then try again`);
    });
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}

async function startLocked(o: StartHostOptions, env: NodeJS.ProcessEnv, paths: HostPaths): Promise<{ session: OpenedSession; daemonAddress: string; notes: string[] }> {
  const existing = await readHostSession(paths);
  if (existing) {
    throw new BtrflyError('SESSION', `a host-mode ${existing.mode} session of tag "${existing.tag}" is active since ${existing.since}: run "btrfly stop ${existing.mode}" first`);
  }
  if (process.getuid?.() !== 0) {
    throw new BtrflyError('PERMISSION', 'host mode changes /etc/resolv.conf and the trust store and needs root: run with sudo, or use "btrfly run" (command mode) instead');
  }
  const host = new HostConfigurator(paths);
  const login = await readLogin(env);
  if (login) return startServiceSession(o, login, host, paths);
  const settings = daemonSettings(env);
  const upstreamDns = o.upstream.dns?.length ? o.upstream.dns : await host.originalNameservers();
  const args = ['--archive', path.resolve(o.archiveDir), '--address', settings.address, '--proxy-port', String(settings.proxyPort)];
  for (const d of upstreamDns) args.push('--upstream-dns', d);
  for (const r of o.upstream.resolve ?? []) args.push('--resolve', r);
  for (const c of o.upstream.caFiles ?? []) args.push('--upstream-ca', path.resolve(c));
  // Not on the daemon's command line: that is readable by every user of the host for as long
  // as the daemon runs, and a proxy URL may hold a password. Its environment is root's alone.
  const daemonEnv = o.upstream.proxy ? { [DAEMON_UPSTREAM_PROXY_ENV]: o.upstream.proxy } : undefined;
  // The daemon takes seconds to start (Node, its modules, the system CAs): the trust store is
  // changed meanwhile, and the resolver once the session is open; all of it undone on a refusal.
  const opening = ensureDaemon(paths.stateDir, args, { archiveDir: o.archiveDir, env: daemonEnv }).then(async (daemon) => {
    const session = await controlRequest<OpenedSession>(daemon.socket, 'POST', '/sessions', {
      tag: o.tag,
      mode: o.mode,
      append: o.append,
      clients: hostAddresses(),
      redactHeaders: o.redactHeaders,
      redactQuery: o.redactQuery,
      keepQuery: o.keepQuery,
      rules: o.rules,
    }).catch(async (e: unknown) => {
      // The session was refused (an unknown tag, a bad name): a daemon this start began, holding
      // no session, must not outlive it (the next start with another archive would be refused).
      await stopDaemonIfIdle(daemon);
      throw e;
    });
    return { daemon, session };
  });
  const switching = CertificateAuthority.loadOrCreate().then((ca) =>
    host.apply({ dnsServer: settings.address, caPem: ca.certPem, caName: 'ca', beforeResolver: () => opening.then(() => undefined) }).then(() => ca),
  );
  const [opened, switched] = await Promise.allSettled([opening, switching]);
  // Refused: apply saw it too and put the host back (or said why it could not).
  if (opened.status === 'rejected') throw switched.status === 'rejected' && switched.reason !== opened.reason ? switched.reason : opened.reason;
  const { daemon, session } = opened.value;
  try {
    if (switched.status === 'rejected') throw switched.reason;
    // A daemon that was already running for this archive may listen on another address.
    if (daemon.address !== settings.address) await host.apply({ dnsServer: daemon.address, caPem: switched.value.certPem, caName: 'ca' });
    const file: HostSessionFile = { id: session.info.id, tag: session.info.tag, mode: o.mode, since: session.info.since, archive: path.resolve(o.archiveDir) };
    await writeFile(path.join(paths.stateDir, HOST_SESSION), JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  } catch (e) {
    await controlRequest(daemon.socket, 'DELETE', `/sessions/${session.info.id}?discard=1`).catch(() => {});
    await stopDaemonIfIdle(daemon);
    await host.restore().catch((r: unknown) => {
      throw new BtrflyError('CONFIG', `${oneLine(e)} (restoring the host also failed: ${oneLine(r)}: run "sudo btrfly stop ${o.mode}" to retry)`, { cause: e });
    });
    throw e;
  }
  // As "btrfly run --record" does: a recording of this tag that a crash left aside is named, with what to do.
  const notes = o.mode === 'record' || o.append ? (await asideRecordingsIn(o.archiveDir, session.info.tag)).map(asideAdvice) : [];
  return { session, daemonAddress: daemon.address, notes };
}

/** The recordings left aside in the archive at `dir` (of `tag`, or all): none when there is no archive there. */
export async function asideRecordingsIn(dir: string, tag?: string): Promise<AsideRecording[]> {
  const archive = await Archive.open(dir).catch(() => undefined);
  if (!archive) return [];
  try {
    return await archive.asideRecordings(tag);
  } finally {
    await archive.close();
  }
}

/**
 * Service mode: the session is registered with the service this host is logged in to (the
 * service takes the host's source address as its client); then the resolver points at the
 * service's DNS and the system trusts the service's CA.
 */
async function startServiceSession(o: StartHostOptions, login: Login, host: HostConfigurator, paths: HostPaths): Promise<{ session: OpenedSession; daemonAddress: string; notes: string[] }> {
  const reg = await serviceRequest<RegisteredSession>(login, 'POST', '/v1/sessions', {
    tag: o.tag,
    mode: o.mode,
    append: o.append,
    redactHeaders: o.redactHeaders,
    redactQuery: o.redactQuery,
    keepQuery: o.keepQuery,
    rules: o.rules,
  });
  try {
    await host.apply({ dnsServer: reg.dns, caPem: reg.caPem, caName: 'service' });
    const file: HostSessionFile = { id: reg.session.id, tag: reg.session.tag, mode: o.mode, since: reg.session.since, archive: login.url, service: login.url };
    await writeFile(path.join(paths.stateDir, HOST_SESSION), JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  } catch (e) {
    await serviceRequest(login, 'DELETE', `/v1/sessions/${reg.session.id}?discard=1`).catch(() => {});
    await host.restore().catch(() => {});
    throw e;
  }
  return { session: { info: reg.session }, daemonAddress: reg.dns, notes: [] };
}

/**
 * Ends a service-mode session on the service, then restores the host. The host is restored
 * whatever the service or the login file say: a build host must not stay pointed at a service
 * that is gone, that refuses its revoked token, or whose login file was damaged.
 */
async function stopServiceSession(active: HostSessionFile, o: StopHostOptions, host: HostConfigurator, paths: HostPaths): Promise<StopHostResult> {
  let result: SessionResult | undefined;
  let partial: string | undefined;
  const login = await readLogin(o.env ?? process.env).catch((e: unknown) => new Error(oneLine(e)));
  if (login instanceof Error) {
    partial = `${login.message}; the host is restored, the session on ${active.service} may still be open`;
  } else if (!login || login.url !== active.service) {
    partial = `this host is no longer logged in to ${active.service}: the session there was left open; the host is restored`;
  } else {
    result = await serviceRequest<SessionResult>(login, 'DELETE', `/v1/sessions/${active.id}${o.discard ? '?discard=1' : ''}`).catch((e: unknown) => {
      if (e instanceof BtrflyError && e.code === 'NOT_FOUND') partial = `the service ${active.service} no longer holds session ${active.id} (it was restarted: a recording is sealed at its shutdown); the host is restored`;
      // The service no longer knows the token login checked: it was revoked, and the service ends a revoked token's sessions itself.
      else if (e instanceof BtrflyError && e.code === 'UNAUTHORIZED') partial = `${oneLine(e)}; the host is restored, and the service ended the session itself (it ends a revoked token's sessions, sealing what they recorded)`;
      // A refusal, a service gone or failing.
      else partial = `${oneLine(e)}; the host is restored, the session on the service may still be open`;
      return undefined;
    });
  }
  const { restored } = await host.restore();
  await rm(path.join(paths.stateDir, HOST_SESSION), { force: true });
  const exitCode = (result && o.mode === 'playback' ? playbackExitCode(result) : undefined) ?? EXIT.ok;
  return { result, partial, restored, exitCode };
}

/**
 * `btrfly stop record|playback`: ends the session (a recording is sealed, a playback reports
 * its misses), then restores the resolver and trust store exactly, also when the daemon died
 * or the host rebooted in between; then stops the daemon if no session is left.
 */
export async function stopHostSession(o: StopHostOptions): Promise<StopHostResult> {
  const paths = detectHostPaths(o.env ?? process.env);
  return underHostLock(paths, () => stopLocked(o, paths));
}

async function stopLocked(o: StopHostOptions, paths: HostPaths): Promise<StopHostResult> {
  const host = new HostConfigurator(paths);
  const daemon = await findDaemon(paths.stateDir);
  const active = (await readHostSession(paths)) ?? (daemon && (await unconfirmedSession(daemon)));
  if (active && active.mode !== o.mode) {
    throw new BtrflyError('USAGE', `the active host-mode session is ${active.mode} of tag "${active.tag}": run "btrfly stop ${active.mode}"`);
  }
  if (active?.service) return stopServiceSession(active, o, host, paths);
  const applied = (await host.status()).applied;
  // The host is put back while the recording is sealed: neither needs the other.
  const restoring = host.restore();
  restoring.catch(() => undefined); // awaited below; until then a failure must not count as unhandled
  try {
    let result: SessionResult | undefined;
    let partial: string | undefined;
    if (active && daemon) {
      result = await controlRequest<SessionResult>(daemon.socket, 'DELETE', `/sessions/${active.id}${o.discard ? '?discard=1' : ''}`).catch((e: BtrflyError) => {
        if (/no session/.test(e.message)) return undefined;
        throw e;
      });
    }
    if (!result && o.mode === 'record') {
      partial = await settlePending(active?.archive ?? path.resolve(o.archiveDir), active?.id, o);
    }
    // Its hits and misses died with the daemon: exit 0 would pass a build whose playback missed.
    const lostPlayback = !result && o.mode === 'playback' && active !== undefined;
    if (lostPlayback) {
      partial = `the btrfly daemon stopped during the playback of tag "${active.tag}", and its hits and misses with it: this playback proves nothing; run the build again under "btrfly start playback --tag=${active.tag}"`;
    }
    if (!active && !partial && !applied) {
      // Nothing of this host to restore; a daemon left without a session is still stopped.
      if (daemon && (await stopDaemonIfIdle(daemon))) return { restored: [], idleDaemonStopped: { pid: daemon.pid, archive: daemon.archive }, exitCode: EXIT.ok };
      throw new BtrflyError('SESSION', `no host-mode ${o.mode} session is active: nothing to stop ("btrfly start ${o.mode} --tag=T" starts one)`);
    }
    const { restored } = await restoring;
    await rm(path.join(paths.stateDir, HOST_SESSION), { force: true });
    if (daemon) await stopDaemonIfIdle(daemon);
    const exitCode = lostPlayback ? EXIT.failure : ((result && o.mode === 'playback' ? playbackExitCode(result) : undefined) ?? EXIT.ok);
    return { result, partial, restored, exitCode };
  } finally {
    // Never left half done behind an error (a second "btrfly stop" would finish it, but need not).
    await restoring.catch(() => undefined);
  }
}

/** A recording whose daemon died: seal or discard what it completed, or say how to. */
async function settlePending(archiveDir: string, session: string | undefined, o: StopHostOptions): Promise<string | undefined> {
  let archive: Archive;
  try {
    archive = await Archive.open(archiveDir);
  } catch {
    return undefined;
  }
  try {
    const all = await archive.pendingRecordings();
    const mine: PendingRecording[] = all.filter((p) => !p.activeHolder && (session === undefined || p.session === session));
    if (mine.length === 0) return undefined;
    const lines: string[] = [];
    for (const p of mine) {
      if (o.sealPartial) {
        const commit = await sealPending(archive, p.id, { message: `record ${p.tag}: partial, ${p.entries} entries kept after the daemon stopped` });
        lines.push(`sealed the ${p.entries} completed entries of the interrupted recording as recording ${commit.slice(0, 12)} of tag "${p.tag}"`);
      } else if (o.discard) {
        await archive.discardPending(p.id);
        lines.push(`discarded the interrupted recording of tag "${p.tag}" (${p.entries} entries); the tag is unchanged`);
      } else {
        lines.push(
          `the recording of tag "${p.tag}" was interrupted (the daemon stopped); the tag is unchanged and its ${p.entries} completed entries are kept as pending recording ${p.id}: run "btrfly stop record --seal-partial" to make them the tag, or "btrfly stop record --discard" to drop them`,
        );
      }
    }
    return lines.join('\n');
  } finally {
    await archive.close();
  }
}

/**
 * A session the daemon holds that no host-session file names: a start killed after the daemon
 * opened it and before it wrote the file. Every session of the daemon is a host-mode one, so
 * it is this host's, and stop ends it as it ends a confirmed one.
 */
async function unconfirmedSession(daemon: DaemonInfo): Promise<HostSessionFile | undefined> {
  const status = await controlRequest<{ sessions: SessionInfo[] }>(daemon.socket, 'GET', '/status').catch(() => undefined);
  const s = status?.sessions[0];
  return s && { id: s.id, tag: s.tag, mode: s.mode, since: s.since, archive: daemon.archive };
}

/** Stops the daemon when it holds no session, and waits until it is gone; true when it did. */
async function stopDaemonIfIdle(daemon: DaemonInfo): Promise<boolean> {
  const status = await controlRequest<{ sessions: unknown[] }>(daemon.socket, 'GET', '/status').catch(() => undefined);
  if (!status || status.sessions.length > 0) return false;
  await shutdownDaemon(daemon);
  return true;
}

/** The host-mode session recorded in the state dir, if any. */
export async function readHostSession(paths: Pick<HostPaths, 'stateDir'>): Promise<HostSessionFile | undefined> {
  try {
    return JSON.parse(await readFile(path.join(paths.stateDir, HOST_SESSION), 'utf8')) as HostSessionFile;
  } catch {
    return undefined;
  }
}

/** This host's own addresses: the clients of a host-mode session. */
function hostAddresses(): string[] {
  const out = new Set(['127.0.0.1', '::1']);
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return [...out];
}

/** `btrfly status` in host mode: the daemon's sessions, or the host session file when the daemon is gone. */
export async function hostStatus(env: NodeJS.ProcessEnv = process.env): Promise<{ daemon?: { pid: number; address: string; archive: string }; service?: string; sessions: unknown[]; hostSession?: HostSessionFile; daemonDied: boolean }> {
  const paths = detectHostPaths(env);
  const hostSession = await readHostSession(paths);
  const login = hostSession?.service ? await readLogin(env) : undefined;
  if (login) {
    const st = await serviceRequest<{ sessions: SessionInfo[] }>(login, 'GET', '/v1/status');
    return { service: login.url, sessions: st.sessions.filter((s) => s.id === hostSession!.id), hostSession, daemonDied: false };
  }
  const daemon = await findDaemon(paths.stateDir);
  if (!daemon) return { sessions: [], hostSession, daemonDied: Boolean(hostSession) };
  const status = await controlRequest<{ pid: number; sessions: unknown[] }>(daemon.socket, 'GET', '/status');
  return { daemon: { pid: daemon.pid, address: daemon.address, archive: daemon.archive }, sessions: status.sessions, hostSession, daemonDied: false };
}
