import { BtrflyError } from '../../errors';
import type { Archive } from '../../format/archive';
import { parseTagSpec, validateTagName } from '../../format/names';
import { gitTempFiles } from '../../format/archive-maintenance';
import type { Entry, MatchRule, Redactions } from '../../format/types';
import { CertificateAuthority } from '../tls/ca';
import { preloadX509 } from '../tls/cert-issuer';
import { configDir } from '../base/config-dir';
import { PlaybackSession } from './player';
import { startProxy, type ProxyServer, type ResponseEvent } from '../proxy/proxy-server';
import { RecordSession } from './recorder';
import { redactKey } from '../base/redact-key';
import type { ConnectionLimits } from '../base/connection-limit';
import { newCredential, newSessionInfo, SessionTable, type CloseOptions, type LiveSession, type Mode, type SessionInfo, type SessionResult } from '../proxy/session';
import { Upstream, type UpstreamOptions } from '../proxy/upstream';
import { keepMemoryFlat } from '../proxy/memory';
import { beginRecording } from '../../format/recording-writer';
import { recordingRedactions } from '../../format/manifest';
import { silentLogger, type Logger } from '../base/log';

export interface RuntimeOptions {
  archive: Archive;
  /** Address the proxy listens on. */
  address?: string;
  proxyPort?: number;
  /** Transparent listeners (host mode). */
  httpPort?: number;
  httpsPort?: number;
  upstream?: UpstreamOptions;
  configDir?: string;
  /** Handed down as children: `component: proxy`, and one per session with its id and tag. */
  logger?: Logger;
  /** Called as each proxied response ends (service mode's metrics). */
  onResponse?: (e: ResponseEvent) => void;
  /** Caps on the proxy's open connections (service mode: clients are other machines). */
  connectionLimits?: ConnectionLimits;
}

export interface OpenSessionOptions {
  /** `T` or, for playback, `T@REV`. */
  tag: string;
  mode: Mode;
  /** Record: keep the previous recording's entries. Playback: record what is missing. */
  append?: boolean;
  /** Host-mode clients by source address; none: a credential is issued for the proxy URL. */
  clients?: string[];
  /** Extra request header names to redact, and query parameters stored as keyed hashes. */
  redactHeaders?: string[];
  redactQuery?: string[];
  /** Query parameters of the default secret list (`SECRET_QUERY_PARAMS`) kept in clear. */
  keepQuery?: string[];
  /** Matching rules added to the recording (record only): they travel with the tag. */
  rules?: MatchRule[];
  /** Told when the recording has to wait (a `btrfly gc` runs on the archive). */
  notice?: (line: string) => void;
}

export interface OpenedSession {
  info: SessionInfo;
  /** The secret for the proxy URL (command mode). */
  credential?: string;
  proxyUrl?: string;
}

export type { CloseOptions, SessionResult };

/**
 * btrfly's runtime: the proxy, the CA, the upstream connector and the live sessions over one
 * archive. Command mode runs one in the `btrfly run` process; host and service mode run one
 * in a daemon. Sessions are independent: each has its own tag, mode and clients.
 */
export class Runtime {
  private constructor(
    readonly sessions: SessionTable<LiveSession>,
    readonly archive: Archive,
    readonly ca: CertificateAuthority,
    readonly upstream: Upstream,
    readonly proxy: ProxyServer,
    private readonly key: Buffer,
    private readonly log: Logger,
  ) {}

  static async start(opts: RuntimeOptions): Promise<Runtime> {
    keepMemoryFlat();
    const dir = opts.configDir ?? configDir();
    const ca = await CertificateAuthority.loadOrCreate(dir);
    const upstream = new Upstream(opts.upstream);
    const log = opts.logger ?? silentLogger;
    const sessions = new SessionTable<LiveSession>();
    let proxy: ProxyServer;
    try {
      proxy = await startProxy({
        address: opts.address ?? '127.0.0.1',
        proxyPort: opts.proxyPort ?? 0,
        httpPort: opts.httpPort,
        httpsPort: opts.httpsPort,
        contexts: ca,
        sessions,
        isOwnSocket: (s) => upstream.isOwnSocket(s),
        logger: log.child({ component: 'proxy' }),
        onResponse: opts.onResponse,
        connectionLimits: opts.connectionLimits,
      });
    } catch (e) {
      upstream.close();
      throw e;
    }
    return new Runtime(sessions, opts.archive, ca, upstream, proxy, redactKey(dir), log);
  }

  /** Starts a session; a record session holds its tag's lock until it is closed. */
  async openSession(opts: OpenSessionOptions): Promise<OpenedSession> {
    const spec = parseTagSpec(opts.tag);
    validateTagName(spec.tag);
    const info = newSessionInfo({ tag: spec.tag, mode: opts.mode, append: opts.append, clients: opts.clients });
    const credential = opts.clients && opts.clients.length > 0 ? undefined : newCredential();
    // What the session's first requests would otherwise wait for (a fifth of a second, every
    // client held), made while the session's git work below runs in other processes.
    setImmediate(() => {
      preloadX509();
      if (opts.mode === 'record' || opts.append) this.upstream.prepareHttps();
      if (opts.mode === 'record' && !this.archive.lfsMode) this.archive.git.prepareSmallBodies();
    });
    const session = opts.mode === 'record' ? await this.recordSession(info, opts, spec.rev) : await this.playbackSession(info, spec.rev, opts);
    try {
      this.sessions.add(session, credential?.hash);
    } catch (e) {
      await session.close({ discard: true });
      throw e;
    }
    const proxyUrl = credential ? `http://btrfly:${credential.secret}@${hostForUrl(this.proxy.address)}:${this.proxy.proxyPort}` : undefined;
    return { info, credential: credential?.secret, proxyUrl };
  }

  /** Ends a session: a recording is sealed (or discarded), a playback reports its misses. */
  async closeSession(id: string, opts: CloseOptions = {}): Promise<SessionResult> {
    const session = this.sessions.remove(id);
    if (!session) throw new Error(`no session ${id}`);
    return session.close(opts);
  }

  status(): SessionInfo[] {
    return this.sessions.list().map((s) => s.info);
  }

  /** Stops listening; open recordings are sealed (graceful shutdown loses nothing), or ended as `opts` says. */
  async close(opts: CloseOptions = {}): Promise<SessionResult[]> {
    await this.proxy.close();
    const results: SessionResult[] = [];
    for (const s of this.sessions.list()) {
      this.sessions.remove(s.info.id);
      results.push(await s.close(opts));
    }
    this.upstream.close();
    return results;
  }

  private sessionLogger(info: SessionInfo): Logger {
    return this.log.child({ session: info.id, tag: info.tag, mode: info.mode });
  }

  private async recordSession(info: SessionInfo, opts: OpenSessionOptions, rev: string | undefined): Promise<RecordSession> {
    if (rev) throw new BtrflyError('USAGE', `record takes a tag, not a recording: drop "@${rev}" from --tag`);
    const writer = await beginRecording(this.archive, info.tag, { append: opts.append, session: info.id, onNotice: opts.notice ?? ((l) => this.log.info({ tag: info.tag }, l)) });
    // git's temp files before the recording: those a git that fails on a full disk leaves are removed.
    const gitTemps = await gitTempFiles(this.archive.dir);
    let redact: Redactions;
    let previous: Entry[];
    try {
      info.rev = writer.baseCommit();
      previous = opts.append && info.rev ? (await this.archive.readRecording(info.tag, info.rev)).manifest.entries : [];
      redact = recordingRedactions(info.tag, writer.redactions(), { headers: opts.redactHeaders, query: opts.redactQuery, keep: opts.keepQuery, carried: previous });
      await writer.setRedactions(redact);
      if (opts.rules?.length) await writer.setRules(mergeRules(writer.rules(), opts.rules));
    } catch (e) {
      // The writer holds the tag's lock: without this the tag stays busy until the process ends.
      await writer.abandon();
      throw e;
    }
    return new RecordSession(info, writer, this.archive, this.upstream, redact, this.key, this.sessionLogger(info), previous, { dir: this.archive.dir, gitTemps });
  }

  private async playbackSession(info: SessionInfo, rev: string | undefined, opts: OpenSessionOptions): Promise<PlaybackSession> {
    const commit = await this.archive.resolveCommit(info.tag, rev);
    info.rev = commit;
    const recording = await this.archive.readRecording(info.tag, commit);
    // --append: what the recording misses is fetched and recorded as a new recording of the tag.
    let filler: RecordSession | undefined;
    if (opts.append) {
      if (rev) throw new BtrflyError('USAGE', `--append records onto the tag, not onto recording ${rev}: drop "@${rev}" from --tag`);
      const fillerInfo = newSessionInfo({ tag: info.tag, mode: 'record', append: true });
      fillerInfo.id = info.id;
      filler = await this.recordSession(fillerInfo, { ...opts, mode: 'record' }, undefined);
    }
    return new PlaybackSession(info, recording, this.archive, this.key, this.sessionLogger(info), filler, () => this.archive.tagLeft(info.tag, commit));
  }
}

/** The previous rules plus the new ones; a rule for the same host gains the new names. */
function mergeRules(base: MatchRule[], extra: MatchRule[]): MatchRule[] {
  const byHost = new Map<string, MatchRule>();
  for (const r of [...base, ...extra]) {
    const cur = byHost.get(r.host) ?? { host: r.host };
    const union = (a?: string[], b?: string[]) => (a || b ? [...new Set([...(a ?? []), ...(b ?? [])])].sort() : undefined);
    const ignoreQuery = union(cur.ignoreQuery, r.ignoreQuery);
    const ignoreHeaders = union(cur.ignoreHeaders, r.ignoreHeaders);
    byHost.set(r.host, { host: r.host, ...(ignoreQuery ? { ignoreQuery } : {}), ...(ignoreHeaders ? { ignoreHeaders } : {}) });
  }
  return [...byHost.values()];
}

function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
