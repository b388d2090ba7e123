import { randomBytes, randomUUID, createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BtrflyError, EXIT } from '../../errors';
import type { Entry, TagLeft } from '../../format/types';
import type { Outcome } from './outcome';

export type Mode = 'record' | 'playback';

/** A miss as listed at the end of a playback. */
export interface MissRecord {
  method: string;
  url: string;
  nearest: string[];
}

/**
 * A recorded body that failed its check while it was being played back: the client got a broken
 * transfer (never a clean end with wrong bytes), and the run exits non-zero naming it.
 */
export interface DamagedBody {
  method: string;
  url: string;
  sha256: string;
  /** BODY_CORRUPT (bytes that do not match) or BODY_MISSING (an object gone from the archive). */
  code: 'BODY_CORRUPT' | 'BODY_MISSING';
  /** Set when the tag let go of the recording while it was played back (then gc removed the body): no repair helps. */
  left?: TagLeft;
}

/**
 * A recorded answer playback could not send at all (the client got btrfly's `500`): a manifest
 * edited to hold what HTTP cannot carry (a header value with a line break), or a failure of btrfly's own.
 */
export interface UnansweredRecord {
  method: string;
  url: string;
  why: string;
  /** The headers had gone out: the client's transfer was broken off mid-body, not answered 500. */
  brokenOff?: boolean;
}

/**
 * The exit status a session's result calls for, or undefined when it calls for none (then the
 * command's own status stands): 1 when a played-back body was damaged or a recorded answer could
 * not be sent, 3 when the playback missed.
 */
export function playbackExitCode(result: { misses: readonly MissRecord[]; damaged?: readonly DamagedBody[]; unanswered?: readonly UnansweredRecord[] }): number | undefined {
  if (result.damaged?.length || result.unanswered?.length) return EXIT.failure;
  if (result.misses.length > 0) return EXIT.miss;
  return undefined;
}

export interface SessionStats {
  requests: number;
  /** Response body bytes sent to clients. */
  bytes: number;
  hits: number;
  misses: number;
  /** Playback answers broken off because their body failed its check ({@link DamagedBody}). */
  corrupt: number;
  upstreamErrors: number;
  /** Entries written (record). */
  recorded: number;
}

/**
 * Counts an answer in its session's stats by what `handle()` returned, once it is known (a hit
 * once it was sent, a damaged body as corrupt, never as a hit first): the run's summary,
 * `btrfly status` and the service read these. `recorded` stays the count of entries stored.
 */
export function countOutcome(stats: SessionStats, outcome: Outcome): void {
  if (outcome === 'hit') stats.hits++;
  else if (outcome === 'miss') stats.misses++;
  else if (outcome === 'corrupt') stats.corrupt++;
  else if (outcome === 'upstream-error') stats.upstreamErrors++;
}

/** A session as plain data: what `btrfly status` and the service's API show. */
export interface SessionInfo {
  id: string;
  tag: string;
  /** The recording played back (playback), or the tag's commit when the record started. */
  rev?: string;
  mode: Mode;
  append: boolean;
  since: string;
  /** Host-mode clients by source address. */
  clients: string[];
  stats: SessionStats;
}

export function newSessionInfo(init: { tag: string; mode: Mode; append?: boolean; clients?: string[]; rev?: string }): SessionInfo {
  return {
    id: randomUUID(),
    tag: init.tag,
    rev: init.rev,
    mode: init.mode,
    append: init.append ?? false,
    since: new Date().toISOString(),
    clients: init.clients ?? [],
    stats: { requests: 0, bytes: 0, hits: 0, misses: 0, corrupt: 0, upstreamErrors: 0, recorded: 0 },
  };
}

export interface SessionResult {
  info: SessionInfo;
  /** Record: the sealed recording's commit. */
  commit?: string;
  /** Record: the recording kept aside instead of sealed (the command failed); the tag is unchanged. */
  aside?: { id: string; entries: number; exitCode: number; leaks?: number };
  /** Record, closed with `interrupted`: the recording left pending, as a crash leaves it; the tag is unchanged. */
  interrupted?: { id: string; entries: number };
  misses: MissRecord[];
  /** Playback: bodies that failed their check while being sent. */
  damaged?: DamagedBody[];
  /** Playback: recorded answers that could not be sent at all. */
  unanswered?: UnansweredRecord[];
  unused?: Entry[];
}

/** How a session ends: sealed (the default), discarded, or kept aside because the command failed with `keepAside`. */
export interface CloseOptions {
  discard?: boolean;
  message?: string;
  /** The failed command's exit status: the recording is kept aside, not sealed (an empty one is dropped). */
  keepAside?: number;
  /** With keepAside: how many connections btrfly could not carry (run --isolate) held it back. */
  leaks?: number;
  /**
   * The host-mode daemon stopped under the session (a reboot, a kill), not its build: the
   * recording is left pending as a crash leaves it, for `btrfly stop record` to seal or
   * discard (an empty one is dropped).
   */
  interrupted?: boolean;
  /** The recorded program, named (without its arguments) in the commit message. */
  program?: string;
}

/** A live session as the runtime holds it: it answers requests and owns its close. */
export interface LiveSession {
  readonly info: SessionInfo;
  /** Answers the request; resolves with how it ended, for metrics and logs. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<Outcome>;
  /** A URL as a log may show it: as the session stores and matches it, its secret query values redacted, no `user:password@`. */
  loggedUrl(url: URL): string;
  /** Waits for the answers under way, then seals, sets aside or discards (record) or reports (playback). */
  close(opts: CloseOptions): Promise<SessionResult>;
}

/** A session credential: the secret travels in the proxy URL; only its hash is kept. */
export function newCredential(): { secret: string; hash: string } {
  const secret = randomBytes(18).toString('base64url');
  return { secret, hash: hashCredential(secret) };
}

export function hashCredential(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/**
 * Finds the session a client belongs to: by the credential in its proxy URL (command mode)
 * or by its source address (host mode). A client that matches neither belongs to none.
 */
export class SessionTable<S extends { info: SessionInfo }> {
  private readonly byCredential = new Map<string, S>();
  private readonly byAddress = new Map<string, S>();
  private readonly all = new Map<string, S>();

  add(session: S, credentialHash?: string): void {
    for (const s of this.all.values()) {
      if (s.info.mode === 'record' && session.info.mode === 'record' && s.info.tag === session.info.tag) {
        throw new BtrflyError('TAG_BUSY', `tag "${session.info.tag}" is already being recorded (session ${s.info.id}): stop it first or pick another tag`);
      }
    }
    for (const addr of session.info.clients) {
      const other = this.byAddress.get(normalizeAddress(addr));
      if (other) throw new BtrflyError('SESSION', `client ${addr} is already in session ${other.info.id} (tag "${other.info.tag}"): stop that session first`, { httpStatus: 409 });
    }
    this.all.set(session.info.id, session);
    if (credentialHash) this.byCredential.set(credentialHash, session);
    for (const addr of session.info.clients) this.byAddress.set(normalizeAddress(addr), session);
  }

  remove(id: string): S | undefined {
    const s = this.all.get(id);
    if (!s) return undefined;
    this.all.delete(id);
    for (const [k, v] of this.byCredential) if (v === s) this.byCredential.delete(k);
    for (const [k, v] of this.byAddress) if (v === s) this.byAddress.delete(k);
    return s;
  }

  get(id: string): S | undefined {
    return this.all.get(id);
  }

  list(): S[] {
    return [...this.all.values()];
  }

  /** The session whose credential is `secret`, compared by hash. */
  byProxyCredential(secret: string | undefined): S | undefined {
    if (!secret) return undefined;
    const h = hashCredential(secret);
    for (const [k, s] of this.byCredential) {
      if (timingSafeEqual(Buffer.from(k, 'hex'), Buffer.from(h, 'hex'))) return s;
    }
    return undefined;
  }

  bySourceAddress(addr: string | undefined): S | undefined {
    if (!addr) return undefined;
    return this.byAddress.get(normalizeAddress(addr));
  }
}

/** `::ffff:1.2.3.4` and `1.2.3.4` are the same client. */
export function normalizeAddress(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

/** The secret of a `Proxy-Authorization: Basic` header (the password, or the user when no password). */
export function proxyCredential(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Basic\s+(\S+)/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? decoded : decoded.slice(i + 1) || decoded.slice(0, i);
}
