/**
 * Which recorded entry answers a request (playback), and which ordinal a new answer gets
 * (record). Exact by default: method, URL, the selecting headers the entry stored, the
 * request body digest. The manifest's rules loosen it per host (docs/contract.md, "Matching").
 */
import { compareEntries, compareStrings, decodeQueryPart, entryKey, HMAC_PREFIX, redactUrl, REDACTED } from './manifest';
import type { Entry, Header, Manifest, MatchRule } from './types';

/** A request as the matcher sees it. `bodySha256` is the digest of its body, when it has one. */
export interface MatchRequest {
  method: string;
  url: string;
  headers: readonly Header[];
  bodySha256?: string;
}

/** Per playback session: how many times each sequence was answered, and which entries were. Plain data. */
export interface PlaybackState {
  answered: Record<string, number>;
  used: Record<string, true>;
}

export function createPlaybackState(): PlaybackState {
  return { answered: {}, used: {} };
}

/** A recorded entry close to a request that missed, and what differs. */
export interface Candidate {
  entry: Entry;
  /** `method`, `query`, `body`, or `header <name>`. */
  differs: string[];
}

/** Does rule host pattern `pattern` (`*`, `*.example.com`, `example.com`) cover `host`? */
export function ruleCovers(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  if (p === '*') return true;
  if (p.startsWith('*.')) return host.endsWith(p.slice(1));
  return host === p;
}

/** The URL split where the matcher needs it: everything before the query, and the query. */
function splitUrl(url: string): { base: string; query: string | undefined; host: string } {
  const q = url.indexOf('?');
  const base = q < 0 ? url : url.slice(0, q);
  let host = '';
  try {
    host = new URL(base).hostname.toLowerCase();
  } catch {
    // Not a URL we can parse: no rule applies, matching stays exact.
  }
  return { base, query: q < 0 ? undefined : url.slice(q + 1), host };
}

/** The rules' loosening for one host, merged. */
interface Loosening {
  ignoreQuery: Set<string>;
  ignoreHeaders: Set<string>;
}

/** What makes requests "the same request": method, (normalized) URL, stored headers, body digest. */
function sequenceId(request: Entry['request'], normUrl: string): string {
  const headers = request.headers.map((h) => `${h.name.toLowerCase()}:${h.value}`).sort(compareStrings);
  return JSON.stringify([request.method, normUrl, headers, request.bodySha256 ?? null]);
}

/** Entries that answer the same request, in the order they were recorded; the last repeats. */
interface Sequence {
  id: string;
  entries: Entry[];
}

/**
 * An index of one recording for playback: O(1) lookup by method and normalized URL.
 * Plain lookups only; the per-session counters live in a {@link PlaybackState}.
 */
export class RecordingIndex {
  private readonly byKey = new Map<string, Sequence[]>();
  private readonly byPath = new Map<string, Entry[]>();
  private readonly loosening = new Map<string, Loosening>();

  /**
   * @param redactKey the user's key for redacted query parameters (`manifest.redact`): given, a
   *   request's URL is redacted here; without it the caller gives URLs already redacted (the player does).
   */
  constructor(
    private readonly manifest: Manifest,
    private readonly redactKey?: Buffer,
  ) {
    const sequences = new Map<string, Sequence>();
    for (const e of [...manifest.entries].sort(compareEntries)) {
      const { key, normUrl, base } = this.keyOf(e.request.method, e.request.url);
      const id = sequenceId(e.request, normUrl);
      let seq = sequences.get(id);
      if (!seq) {
        seq = { id, entries: [] };
        sequences.set(id, seq);
        pushTo(this.byKey, key, seq);
      }
      seq.entries.push(e);
      pushTo(this.byPath, base, e);
    }
    for (const seq of sequences.values()) seq.entries.sort((a, b) => a.ordinal - b.ordinal);
  }

  /** The entry that answers `req`, counting it in `state`; undefined on a miss. */
  find(req: MatchRequest, state: PlaybackState): Entry | undefined {
    const url = this.redact(req.url);
    const { key, host } = this.keyOf(req.method, url);
    const ignore = this.looseningFor(host).ignoreHeaders;
    // Exact first; then regardless of Accept-Encoding, since playback decodes a recorded
    // Content-Encoding the client does not accept (docs/contract.md, "Fidelity").
    const best = this.bestSequence(key, req, ignore) ?? this.bestSequence(key, req, new Set([...ignore, 'accept-encoding']));
    if (!best) return undefined;
    const n = state.answered[best.seq.id] ?? 0;
    state.answered[best.seq.id] = n + 1;
    const entry = best.seq.entries[Math.min(n, best.seq.entries.length - 1)];
    state.used[entryKey(entry)] = true;
    return entry;
  }

  private bestSequence(key: string, req: MatchRequest, ignore: ReadonlySet<string>): { seq: Sequence; score: number } | undefined {
    let best: { seq: Sequence; score: number } | undefined;
    for (const seq of this.byKey.get(key) ?? []) {
      const first = seq.entries[0];
      if ((first.request.bodySha256 ?? null) !== (req.bodySha256 ?? null)) continue;
      const score = headersMatch(first.request.headers, req.headers, ignore);
      if (score >= 0 && (!best || score > best.score)) best = { seq, score };
    }
    return best;
  }

  /** Up to `n` recorded entries with the same scheme, host and path as `req`, fewest differences first. */
  nearest(req: MatchRequest, n = 3): Candidate[] {
    const url = this.redact(req.url);
    const { base, query, host } = splitUrl(url);
    const loose = this.looseningFor(host);
    const wantQuery = normalizeQuery(query, loose.ignoreQuery);
    const out: Candidate[] = [];
    for (const e of this.byPath.get(base) ?? []) {
      const differs: string[] = [];
      if (e.request.method !== req.method) differs.push('method');
      const storedQuery = normalizeQuery(splitUrl(e.request.url).query, loose.ignoreQuery);
      if (storedQuery !== wantQuery) {
        // Only the keyed hash of a redacted value: another value, or another host's redact key.
        const redacted = redactedDifference(storedQuery, wantQuery);
        differs.push(...(redacted ? redacted.map((name) => `redacted ${name}`) : ['query']));
      }
      for (const name of differingHeaders(e.request.headers, req.headers, loose.ignoreHeaders)) differs.push(`header ${name}`);
      if ((e.request.bodySha256 ?? null) !== (req.bodySha256 ?? null)) differs.push('body');
      out.push({ entry: e, differs });
    }
    return out.sort((a, b) => a.differs.length - b.differs.length || compareEntries(a.entry, b.entry)).slice(0, n);
  }

  /** Entries that no request of the session was answered with (`--unused`). */
  unused(state: PlaybackState): Entry[] {
    return [...this.manifest.entries].sort(compareEntries).filter((e) => !state.used[entryKey(e)]);
  }

  private redact(url: string): string {
    return this.redactKey ? redactUrl(url, this.manifest.redact, this.redactKey) : url;
  }

  private keyOf(method: string, url: string): { key: string; normUrl: string; base: string; host: string } {
    const { base, query, host } = splitUrl(url);
    const ignoreQuery = this.looseningFor(host).ignoreQuery;
    const normUrl = ignoreQuery.size ? joinQuery(base, normalizeQuery(query, ignoreQuery)) : url;
    return { key: `${method} ${normUrl}`, normUrl, base, host };
  }

  private looseningFor(host: string): Loosening {
    let l = this.loosening.get(host);
    if (!l) {
      const rules = this.manifest.rules.filter((r: MatchRule) => ruleCovers(r.host, host));
      l = {
        ignoreQuery: new Set(rules.flatMap((r) => r.ignoreQuery ?? [])),
        ignoreHeaders: new Set(rules.flatMap((r) => r.ignoreHeaders ?? []).map((h) => h.toLowerCase())),
      };
      this.loosening.set(host, l);
    }
    return l;
  }
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** The query without ignored parameters, otherwise byte for byte and in the order sent. */
function normalizeQuery(query: string | undefined, ignore: ReadonlySet<string>): string | undefined {
  if (query === undefined || ignore.size === 0) return query;
  const kept = query.split('&').filter((pair) => {
    const eq = pair.indexOf('=');
    return !ignore.has(decodeQueryPart(eq < 0 ? pair : pair.slice(0, eq)));
  });
  return kept.length ? kept.join('&') : undefined;
}

/** The names of the redacted parameters whose hashed values alone make two queries differ; undefined when anything else differs. */
function redactedDifference(a: string | undefined, b: string | undefined): string[] | undefined {
  const pa = (a ?? '').split('&');
  const pb = (b ?? '').split('&');
  if (pa.length !== pb.length) return undefined;
  const split = (pair: string): [string, string] => {
    const eq = pair.indexOf('=');
    return eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
  };
  const names: string[] = [];
  for (let i = 0; i < pa.length; i++) {
    if (pa[i] === pb[i]) continue;
    const [na, va] = split(pa[i]);
    const [nb, vb] = split(pb[i]);
    if (na !== nb || !va.startsWith(HMAC_PREFIX) || !vb.startsWith(HMAC_PREFIX)) return undefined;
    names.push(decodeQueryPart(na));
  }
  return names;
}

function joinQuery(base: string, query: string | undefined): string {
  return query === undefined ? base : `${base}?${query}`;
}

/** All values of a header, joined as HTTP would fold them; undefined when absent. */
function headerValue(headers: readonly Header[], lowerName: string): string | undefined {
  const values = headers.filter((h) => h.name.toLowerCase() === lowerName).map((h) => h.value);
  return values.length ? values.join(', ') : undefined;
}

/** Stored header names whose value the request does not match. */
function differingHeaders(stored: readonly Header[], sent: readonly Header[], ignore: ReadonlySet<string>): string[] {
  const names = [...new Set(stored.map((h) => h.name.toLowerCase()))].filter((n) => !ignore.has(n));
  return names.filter((name) => {
    const want = headerValue(stored, name);
    return want !== REDACTED && want !== headerValue(sent, name);
  });
}

/** -1 when a stored header does not match; otherwise how many were compared (more is more specific). */
function headersMatch(stored: readonly Header[], sent: readonly Header[], ignore: ReadonlySet<string>): number {
  if (differingHeaders(stored, sent, ignore).length) return -1;
  return stored.filter((h) => h.value !== REDACTED && !ignore.has(h.name.toLowerCase())).length;
}

/** What makes a response a different answer for the ordinal counter. */
export interface AnswerDigest {
  status: number;
  sha256: string;
}

/**
 * Assigns ordinals while recording (and importing). The same request (method, URL, stored
 * selecting headers, body digest) answered again the same way as its last answer is a duplicate,
 * not a new entry. A new answer takes the next free ordinal of its method and URL: the archive
 * keys an entry by `METHOD URL #ordinal` (manifest merge at seal, volatile.json, diff), so two
 * different requests to one URL (git's two POSTs to git-upload-pack, with different bodies) must
 * not both be #0, or the second replaces the first at seal. Each request's own answers keep their
 * order, which is all playback needs. Seed it with the manifest being appended to, if any.
 */
export class OrdinalCounter {
  /** Per request: its last answer and that answer's ordinal. */
  private readonly last = new Map<string, { ordinal: number; answer: string }>();
  /** Per method and URL: the next free ordinal. */
  private readonly next = new Map<string, number>();

  constructor(existing: readonly Entry[] = []) {
    for (const e of existing) {
      const key = sequenceId(e.request, e.request.url);
      const prev = this.last.get(key);
      if (!prev || e.ordinal > prev.ordinal) this.last.set(key, { ordinal: e.ordinal, answer: answerOf(e.response.status, e.response.content.sha256) });
      const url = urlKey(e.request);
      this.next.set(url, Math.max(this.next.get(url) ?? 0, e.ordinal + 1));
    }
  }

  /** The ordinal for this answer to `request`, and whether it repeats the last answer (then do not add it). */
  assign(request: Entry['request'], answer: AnswerDigest): { ordinal: number; duplicate: boolean } {
    const key = sequenceId(request, request.url);
    const a = answerOf(answer.status, answer.sha256);
    const prev = this.last.get(key);
    if (prev && prev.answer === a) return { ordinal: prev.ordinal, duplicate: true };
    const url = urlKey(request);
    const ordinal = this.next.get(url) ?? 0;
    this.next.set(url, ordinal + 1);
    this.last.set(key, { ordinal, answer: a });
    return { ordinal, duplicate: false };
  }
}

function urlKey(request: Entry['request']): string {
  return `${request.method} ${request.url}`;
}

function answerOf(status: number, sha256: string): string {
  return `${status} ${sha256}`;
}
