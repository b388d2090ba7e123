import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { entryKey, mergeHeaders, redactUrl } from '../../format/manifest';
import { RecordingIndex, createPlaybackState, type Candidate } from '../../format/match';
import { tagLeftAdvice, type BodyStore, type Entry, type Recording, type TagLeft } from '../../format/types';
import { hasRequestBody, headerPairs } from '../proxy/http-util';
import { silentLogger, type Logger } from '../base/log';
import type { Outcome } from '../proxy/outcome';
import { sendRecorded, type RecordedAnswer } from '../proxy/respond';
import { countOutcome, type CloseOptions, type DamagedBody, type LiveSession, type MissRecord, type SessionInfo, type SessionResult, type UnansweredRecord } from '../proxy/session';
import { isBtrflyError, oneLine, type BtrflyError } from '../../errors';

/** A body that failed its check or is gone from the archive (the answer is broken off, the run fails). */
function isDamage(e: unknown): e is BtrflyError & { code: DamagedBody['code'] } {
  return isBtrflyError(e) && (e.code === 'BODY_CORRUPT' || e.code === 'BODY_MISSING');
}

/**
 * A playback session: answers every request from one recording and never opens a
 * connection upstream. A request the recording does not hold is a miss: `404` with
 * `X-Btrfly: miss` and a body that names the tag, the request and the nearest candidates.
 */
export class PlaybackSession {
  readonly misses: MissRecord[] = [];
  /** Bodies that failed their check while being sent, once each. */
  readonly damaged: DamagedBody[] = [];
  /** Recorded answers that could not be sent at all (listed at the end; the run fails). */
  readonly unanswered: UnansweredRecord[] = [];
  private readonly index: RecordingIndex;
  private readonly state = createPlaybackState();

  constructor(
    readonly info: SessionInfo,
    readonly recording: Recording,
    private readonly bodies: BodyStore,
    private readonly redactKey: Buffer,
    /** The session's logger (its id and tag bound). */
    private readonly log: Logger = silentLogger,
    /** `--append`: where a request the recording does not hold goes instead of a miss (a record session, closed with this one). */
    private readonly fallback?: LiveSession,
    /** Whether the tag still holds the recording (`Archive.tagLeft`): asked when a body is gone, which no repair fixes then. */
    private readonly tagLeft?: () => Promise<TagLeft | undefined>,
  ) {
    this.index = new RecordingIndex(recording.manifest);
  }

  private readonly answering = new Set<Promise<Outcome>>();
  private readonly countSent = (bytes: number): void => {
    this.info.stats.bytes += bytes;
  };

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<Outcome> {
    const p = this.answer(req, res, url);
    this.answering.add(p);
    try {
      const outcome = await p;
      countOutcome(this.info.stats, outcome);
      return outcome;
    } finally {
      this.answering.delete(p);
    }
  }

  /** Resolves when every answer under way has been sent, so the summary counts all of it. */
  async drain(): Promise<void> {
    while (this.answering.size > 0) await Promise.allSettled([...this.answering]);
  }

  /** Reports the misses, damaged and unused entries once every answer is sent; with `--append`, seals what was recorded. */
  async close(o: CloseOptions): Promise<SessionResult> {
    const info = this.info;
    await this.drain();
    let commit: string | undefined;
    let aside: SessionResult['aside'];
    const filler = this.fallback;
    if (filler) {
      info.stats.recorded = filler.info.stats.recorded;
      info.stats.upstreamErrors = filler.info.stats.upstreamErrors;
      info.stats.bytes += filler.info.stats.bytes;
      const sealed = await filler.close({ ...o, discard: o.discard || filler.info.stats.recorded === 0 });
      commit = sealed.commit;
      aside = sealed.aside;
    }
    return { info, commit, aside, misses: this.misses, damaged: this.damaged, unanswered: this.unanswered, unused: this.unused() };
  }

  /** A URL as the log may show it: as the recording stores it, its redacted query values hashed or replaced. */
  loggedUrl(url: URL): string {
    return redactUrl(url.href, this.recording.manifest.redact, this.redactKey);
  }

  private async answer(req: IncomingMessage, res: ServerResponse, url: URL): Promise<Outcome> {
    this.info.stats.requests++;
    const bodySha256 = hasRequestBody(req) ? await digestBody(req) : undefined;
    const request = {
      method: req.method ?? 'GET',
      url: redactUrl(url.href, this.recording.manifest.redact, this.redactKey),
      headers: headerPairs(req.rawHeaders),
      bodySha256,
    };
    const entry = this.index.find(request, this.state);
    if (!entry) {
      // A request body was consumed for its digest, so only body-less requests can be fetched now.
      if (this.fallback && bodySha256 === undefined) return this.fallback.handle(req, res, url);
      return this.miss(request, res);
    }
    try {
      await sendRecorded(req, res, this.answerFor(entry), this.bodies, this.countSent);
      return 'hit';
    } catch (e) {
      if (isDamage(e)) return this.damage(entry, e.code, res, oneLine(e), await this.tagLeft?.().catch(() => undefined));
      // Nothing of the answer went out: the client gets btrfly's 500; or its body broke off (a
      // store that cannot be read): the client's transfer is cut. Either way the run must not pass for a clean playback.
      if (!res.headersSent || !clientGone(e)) this.unanswered.push({ method: entry.request.method, url: entry.request.url, why: oneLine(e), ...(res.headersSent && { brokenOff: true }) });
      throw e;
    }
  }

  /**
   * A body failed its check mid-answer: the client's transfer is broken off (the socket destroyed
   * before the last byte, so it never sees a clean end), and the body is listed for the summary.
   */
  private damage(entry: Entry, code: DamagedBody['code'], res: ServerResponse, error: string, left?: TagLeft): 'corrupt' {
    const sha256 = entry.response.content.sha256;
    if (!this.damaged.some((d) => d.sha256 === sha256)) this.damaged.push({ method: entry.request.method, url: entry.request.url, sha256, code, ...(left && { left }) });
    // The tag let go of the recording and gc removed its bodies: a repair would not bring them back into it.
    const why = left ? `body ${sha256} of ${entry.request.method} ${entry.request.url} is gone from the archive: ${tagLeftAdvice(this.info.tag, this.recording.commit, left)}` : error;
    this.log.error({ method: entry.request.method, url: entry.request.url, sha256, error: why }, 'playback body damaged');
    if (!res.headersSent) {
      const body = `btrfly: ${why}\n`;
      res.setHeader('X-Btrfly', 'corrupt');
      res.writeHead(502, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    } else res.destroy();
    return 'corrupt';
  }

  /** The recorded entries nothing asked for (`--unused`). */
  unused(): Entry[] {
    return this.index.unused(this.state);
  }

  private answerFor(entry: Entry): RecordedAnswer {
    const volatile = this.recording.volatile.entries[entryKey(entry)] ?? [];
    return { entry, headers: mergeHeaders(entry.response.headers, volatile), body: this.recording.bodies.get(entry.response.content.sha256) };
  }

  private miss(request: { method: string; url: string; headers: { name: string; value: string }[]; bodySha256?: string }, res: ServerResponse): 'miss' {
    const nearest = this.index.nearest(request, 3).map(describeCandidate);
    this.misses.push({ method: request.method, url: request.url, nearest });
    this.log.info({ method: request.method, url: request.url }, 'playback miss');
    const lines = [
      `btrfly: playback miss: ${request.method} ${request.url} is not in tag "${this.info.tag}" (recording ${this.recording.commit.slice(0, 12)}).`,
      nearest.length > 0 ? 'Nearest recorded candidates:' : 'No recorded request has the same host and path.',
      ...nearest.map((n) => `  ${n}`),
      `To record it, run the build again with "btrfly run --record --append --tag=${this.info.tag}" (or "btrfly start record --append").`,
      '',
    ];
    const body = lines.join('\n');
    res.setHeader('X-Btrfly', 'miss');
    res.writeHead(404, 'Not Found', {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    res.end(body);
    return 'miss';
  }
}

/** Whether an answer failed because its client hung up (it stopped reading), which is no fault of the recording. */
function clientGone(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED' || code === 'EPIPE' || code === 'ECONNRESET';
}

/** `GET https://h/p?x=2 (query differs)`; a redacted value that differs says the two ways it can. */
function describeCandidate(c: Candidate): string {
  if (!c.differs.length) return `${c.entry.request.method} ${c.entry.request.url}`;
  const keyed = c.differs.some((d) => d.startsWith('redacted '))
    ? ": the build sent another value, or this host's redact key is not the recording's (share it with BTRFLY_REDACT_KEY)"
    : '';
  return `${c.entry.request.method} ${c.entry.request.url} (${c.differs.join(', ')} differs${keyed})`;
}

/** SHA-256 of a request body, consumed as it streams. */
export async function digestBody(req: IncomingMessage): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    req,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb();
      },
    }),
  );
  return hash.digest('hex');
}
