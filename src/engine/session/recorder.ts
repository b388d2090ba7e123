import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mergeHeaders, redactHeaderUrls, redactUrl, selectingRequestHeaders, splitHeaders } from '../../format/manifest';
import { OrdinalCounter } from '../../format/match';
import { removeGitTempsSince } from '../../format/archive-maintenance';
import { storageFailure } from '../../format/disk-space';
import { isNoSpace, recordCommitMessage } from '../../format/lifecycle';
import type { BodyStore, Entry, Header, Redactions, StoredBody, VolatileHeader } from '../../format/types';
import { flatHeaders, hasRequestBody, headerPairs, headerValue, isPartialOrConditional, upstreamRequestHeaders, withoutHopByHop } from '../proxy/http-util';
import { sendRecorded, type RecordedAnswer } from '../proxy/respond';
import { silentLogger, type Logger } from '../base/log';
import type { Outcome } from '../proxy/outcome';
import { countOutcome, type CloseOptions, type SessionInfo, type SessionResult } from '../proxy/session';
import { isStoreError, teeToStore } from '../proxy/tee';
import { upstreamError, type Upstream } from '../proxy/upstream';

/**
 * At most this many exchanges may be answered but not yet stored before new requests wait.
 * Without a bound, 5,000 small files recorded by 8 clients left ~3,000 exchanges (sockets,
 * messages, body writers) queued behind git and the journal, 270–450 MiB at the peak
 * (docs/notes/small-files.md).
 */
const MAX_BEHIND = 256;

/** How one exchange ended, and (once stored) the answer a client asking the same meanwhile shares. */
interface Exchanged {
  outcome: Outcome;
  answer?: RecordedAnswer;
}

/** The open recording of a tag: entries go in as they complete; the tag moves only at seal (`RecordingWriter`). */
export interface RecordingSink {
  addEntry(entry: Entry, volatile: VolatileHeader[], body: StoredBody): Promise<void>;
  /** Entries added so far. */
  readonly size: number;
  seal(opts: { message?: string }): Promise<{ commit: string }>;
  setAside(exitCode: number, leaks?: number): Promise<string>;
  leave(): Promise<string>;
  abandon(): Promise<void>;
}

/** The archive's git directory and git's temp files there before the recording: those a git that fails on a full disk leaves are removed. */
export interface GitTemps {
  dir: string;
  gitTemps: readonly string[];
}

/**
 * What two requests must have in common to share one upstream fetch: the method, the URL and
 * every header sent upstream. The answer may vary on any of them (an `Authorization`, an
 * `Accept-Language`), and its `Vary` is known only once it arrives: a request that differs in
 * one must get its own answer, not another client's.
 */
function shareKey(method: string, url: string, headers: Header[]): string {
  const sent = headers.map((h) => `${h.name.toLowerCase()}: ${h.value}`).sort();
  return [method, url, ...sent].join('\n');
}

/**
 * A record session: forwards each request upstream and streams the response to the client
 * while writing it to the archive. `Range` and `If-*` are not sent upstream so that the
 * archive always holds whole bodies; a client that asked for a range or a conditional answer
 * gets it from the archive once the whole body is stored. Concurrent requests for the same
 * URL with the same headers share one upstream fetch.
 */
export class RecordSession {
  private readonly counter: OrdinalCounter;
  private readonly inflight = new Map<string, Promise<Exchanged>>();
  /**
   * Per method and URL, the last exchange to take its ordinal: each waits for the one that
   * arrived before it, so two requests of one URL are numbered in the order they were made,
   * whichever finished storing first (playback answers them in that order).
   */
  private readonly turns = new Map<string, Promise<void>>();
  private readonly countSent = (bytes: number): void => {
    this.info.stats.bytes += bytes;
  };
  /** Every exchange still being written, so that a seal waits for what the client already has. */
  private readonly writing = new Set<Promise<unknown>>();
  /**
   * The first failure to store what was fetched (a full disk, git): the recording lacks an
   * entry, so it must not become the tag; the session's close reports this instead of sealing.
   */
  storageFailure?: Error;
  /** The bytes the failed store would have needed, roughly (a copy for each the store writes: git and the cache, or LFS mode's one). */
  storageNeeded = 0;
  /** Exchanges whose client has its whole answer while the archive is still storing them. */
  private behind = 0;
  private readonly caughtUp: Array<() => void> = [];

  constructor(
    readonly info: SessionInfo,
    private readonly sink: RecordingSink,
    private readonly store: BodyStore,
    private readonly upstream: Upstream,
    private readonly redact: Redactions,
    private readonly redactKey: Buffer,
    /** The session's logger (its id and tag bound). */
    private readonly log: Logger = silentLogger,
    /** On append: the entries kept from the previous recording, so ordinals continue from them. */
    existing: readonly Entry[] = [],
    private readonly disk?: GitTemps,
  ) {
    this.counter = new OrdinalCounter(existing);
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<Outcome> {
    this.info.stats.requests++;
    // A recorder that cannot keep up slows its clients; it does not pile up exchanges (docs/contract.md, "Streaming").
    while (this.behind >= MAX_BEHIND) await new Promise<void>((resolve) => this.caughtUp.push(resolve));
    const method = req.method ?? 'GET';
    const storedUrl = redactUrl(url.href, this.redact, this.redactKey);
    const shareable = (method === 'GET' || method === 'HEAD') && !hasRequestBody(req);
    const sentHeaders = upstreamRequestHeaders(req, url);
    const key = shareable ? shareKey(method, storedUrl, sentHeaders) : undefined;
    const pending = key ? this.inflight.get(key) : undefined;
    if (pending) {
      const recorded = (await pending.catch(() => undefined))?.answer;
      if (recorded) {
        await sendRecorded(req, res, recorded, this.store, this.countSent);
        return 'recorded';
      }
    }
    const fetch = this.fetchAndRecord(req, res, url, storedUrl, sentHeaders);
    this.writing.add(fetch);
    let counted = false;
    const answered = (): void => {
      if (!this.writing.has(fetch)) return;
      counted = true;
      this.behind++;
    };
    res.once('finish', answered);
    fetch
      .finally(() => {
        this.writing.delete(fetch);
        res.off('finish', answered);
        if (!counted) return;
        this.behind--;
        this.caughtUp.shift()?.();
      })
      .catch(() => {});
    if (key) {
      // Shared only while under way: once this client has its whole answer, the same request
      // again is a new request (a counter, a "latest" URL) and goes upstream.
      this.inflight.set(key, fetch);
      const forget = (): void => void (this.inflight.get(key) === fetch && this.inflight.delete(key));
      res.once('finish', forget);
      fetch.finally(forget).catch(() => {});
    }
    const { outcome } = await fetch;
    countOutcome(this.info.stats, outcome);
    return outcome;
  }

  /** Resolves once every response under way is stored (or failed): call before sealing. */
  async drain(): Promise<void> {
    while (this.writing.size > 0) await Promise.allSettled([...this.writing]);
  }

  /**
   * Ends the recording once every answer under way is stored: sealed as the tag (the default),
   * kept aside (`keepAside`, an empty one dropped) or discarded. A body that could not be stored
   * fails it instead: the recording lacks that body, so it must not become the tag.
   */
  async close(o: CloseOptions): Promise<SessionResult> {
    const info = this.info;
    await this.drain();
    if (this.storageFailure) {
      await this.sink.abandon();
      if (this.disk) await removeGitTempsSince(this.disk.dir, this.disk.gitTemps);
      throw this.disk ? await storageFailure(this.disk.dir, this.storageFailure, this.storageNeeded) : this.storageFailure;
    }
    if (o.discard || ((o.keepAside !== undefined || o.interrupted) && this.sink.size === 0)) {
      await this.sink.abandon();
      return { info, misses: [] };
    }
    if (o.interrupted) return { info, misses: [], interrupted: { id: await this.sink.leave(), entries: this.sink.size } };
    if (o.keepAside !== undefined) {
      const id = await this.sink.setAside(o.keepAside, o.leaks);
      return { info, misses: [], aside: { id, entries: this.sink.size, exitCode: o.keepAside, ...(o.leaks ? { leaks: o.leaks } : {}) } };
    }
    try {
      const { commit } = await this.sink.seal({ message: o.message ?? recordCommitMessage(info.tag, o.program, info.stats.recorded) });
      return { info, commit, misses: [] };
    } catch (e) {
      if (isNoSpace(e) && this.disk) await removeGitTempsSince(this.disk.dir, this.disk.gitTemps);
      throw e;
    }
  }

  private async fetchAndRecord(req: IncomingMessage, res: ServerResponse, url: URL, storedUrl: string, sentHeaders: Header[]): Promise<Exchanged> {
    const turnKey = `${req.method ?? 'GET'} ${storedUrl}`;
    const before = this.turns.get(turnKey) ?? Promise.resolve();
    let done!: () => void;
    const mine = before.then(() => new Promise<void>((resolve) => (done = resolve)));
    this.turns.set(turnKey, mine);
    try {
      return await this.exchange(req, res, url, storedUrl, sentHeaders, before);
    } finally {
      // `done` is set once the turn before has ended; release ours right after it in that case.
      void before.then(() => done());
      if (this.turns.get(turnKey) === mine) void mine.then(() => this.turns.get(turnKey) === mine && this.turns.delete(turnKey));
    }
  }

  /** @param sentHeaders the request's headers as they go upstream ({@link upstreamRequestHeaders}) */
  private async exchange(req: IncomingMessage, res: ServerResponse, url: URL, storedUrl: string, sentHeaders: Header[], turn: Promise<void>): Promise<Exchanged> {
    const method = req.method ?? 'GET';
    const answerLater = isPartialOrConditional(req);
    let sent: ReturnType<Upstream['request']>;
    try {
      sent = this.upstream.request(url, method, flatHeaders(sentHeaders) as never);
    } catch (e) {
      return this.upstreamFailed(res, url, e);
    }
    const { req: upReq, response } = sent;
    let requestDigest: Promise<string | undefined> = Promise.resolve(undefined);
    if (hasRequestBody(req)) {
      // The digest is of everything the client sent, whether or not upstream read it all: a
      // server may answer before it has read the body and close (an ignored or refused upload),
      // and an entry without the digest would never match the same request at playback.
      requestDigest = requestBodyDigest(req);
      req.pipe(upReq);
      upReq.once('error', () => {
        req.unpipe(upReq);
        req.resume();
      });
      // A client that leaves part way: upstream must not wait for the rest of its body.
      req.once('close', () => {
        if (!req.complete) upReq.destroy();
      });
    } else {
      upReq.end();
    }

    let upRes: IncomingMessage;
    try {
      upRes = await response;
    } catch (e) {
      return this.upstreamFailed(res, url, e);
    }
    const received = headerPairs(upRes.rawHeaders);
    if (!answerLater) {
      res.sendDate = false; // the origin's Date, or none as it sent none
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, flatHeaders(withoutHopByHop(received)));
    }

    const writer = this.store.createBodyWriter();
    let stored: StoredBody;
    try {
      await teeToStore(upRes, writer, answerLater ? null : res);
    } catch (e) {
      writer.destroy();
      if (isStoreError(e)) return this.storeFailed(res, e, upRes);
      this.log.warn({ url: this.loggedUrl(url), error: String(e) }, 'upstream body failed, not recorded');
      return this.upstreamFailed(res, url, e);
    }
    try {
      stored = await writer.done;
    } catch (e) {
      writer.destroy();
      return this.storeFailed(res, e, upRes);
    }
    if (!answerLater) this.info.stats.bytes += stored.size;

    const entry = this.entryFor(req, upRes, received, storedUrl, stored, await requestDigest.catch(() => undefined));
    const { kept, volatile } = splitHeaders(received);
    // Stored without the tokens of a redirect's URL; this run's clients get it as sent (answer.headers).
    entry.response.headers = redactHeaderUrls(kept, this.redact, this.redactKey);
    await turn; // the same request made earlier takes its ordinal first
    const { ordinal, duplicate } = this.counter.assign(entry.request, { status: entry.response.status, sha256: stored.sha256 });
    entry.ordinal = ordinal;
    if (!duplicate) {
      try {
        await this.sink.addEntry(entry, volatile, stored);
      } catch (e) {
        return this.storeFailed(res, e);
      }
      this.info.stats.recorded++;
    }
    const answer: RecordedAnswer = {
      entry,
      headers: mergeHeaders(kept, volatile),
      // The writer knows its parts: no `git ls-tree` process per recorded exchange.
      body: writer.location ?? (await this.store.locateBody(stored)),
    };
    if (answerLater) await sendRecorded(req, res, answer, this.store, this.countSent);
    return { outcome: 'recorded', answer };
  }

  private entryFor(req: IncomingMessage, upRes: IncomingMessage, received: Header[], storedUrl: string, stored: StoredBody, bodySha256: string | undefined): Entry {
    const encoding = headerValue(received, 'content-encoding');
    return {
      request: {
        method: req.method ?? 'GET',
        url: storedUrl,
        headers: selectingRequestHeaders(headerPairs(req.rawHeaders), headerValue(received, 'vary'), this.redact, encoding),
        ...(bodySha256 ? { bodySha256 } : {}),
      },
      ordinal: 0,
      response: {
        status: upRes.statusCode ?? 0,
        statusText: upRes.statusMessage ?? '',
        httpVersion: `HTTP/${upRes.httpVersion}`,
        headers: received,
        content: {
          size: stored.size,
          mimeType: headerValue(received, 'content-type') ?? '',
          sha256: stored.sha256,
          ...(encoding && encoding.toLowerCase() !== 'identity' ? { encoding } : {}),
          storage: stored.storage,
          parts: stored.parts,
        },
      },
    };
  }

  /** A body the archive could not store: the client's answer is broken off, and the recording is failed. */
  private storeFailed(res: ServerResponse, e: unknown, upRes?: IncomingMessage): Exchanged {
    if (!this.storageFailure) {
      this.storageFailure = e instanceof Error ? e : new Error(String(e));
      const length = Number(upRes?.headers['content-length'] ?? 0) || 0;
      this.storageNeeded = this.store.bodyCopies * length;
    }
    this.log.error({ error: String(e) }, 'storing a response failed; the recording will not become the tag');
    if (!res.writableFinished) res.destroy();
    return { outcome: 'error' };
  }

  /** A URL as the log may show it: as it would be stored, its redacted query values hashed or replaced and no `user:password@`. */
  loggedUrl(url: URL): string {
    return redactUrl(url.href, this.redact, this.redactKey);
  }

  /** An upstream failure reaches the client as it happened, marked by btrfly; it is not recorded. */
  private upstreamFailed(res: ServerResponse, url: URL, e: unknown): Exchanged {
    const err = upstreamError(url, e);
    if (err.data.kind === 'denied') this.log.warn({ url: this.loggedUrl(url), address: err.data.address, rule: err.data.rule }, 'upstream address denied, not recorded');
    if (res.headersSent) {
      res.destroy(err);
      return { outcome: 'upstream-error' };
    }
    const body = `btrfly: ${err.message}\n`;
    res.setHeader('X-Btrfly', 'upstream-error');
    res.writeHead(err.httpStatus, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'X-Btrfly-Upstream-Error': String(err.data.kind ?? 'error'),
    });
    res.end(body);
    return { outcome: 'upstream-error' };
  }
}

/** The SHA-256 of a request's whole body as the client sent it; undefined when the client left before its end. */
function requestBodyDigest(req: IncomingMessage): Promise<string | undefined> {
  const hash = createHash('sha256');
  return new Promise((resolve) => {
    req.on('data', (chunk: Buffer) => hash.update(chunk));
    req.once('end', () => resolve(hash.digest('hex')));
    req.once('close', () => resolve(undefined));
    req.once('error', () => resolve(undefined));
  });
}
