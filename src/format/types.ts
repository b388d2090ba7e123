/**
 * The archive's plain data (docs/archive-format.md). Serialisable, no behaviour: the code that
 * reads, writes and matches these lives beside them (manifest.ts, body-*.ts, archive.ts).
 */
import type { Readable, Writable } from 'node:stream';

export const FORMAT_VERSION = 1 as const;

/** The SHA-256 of zero bytes, an empty body's. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Bodies larger than this are split into parts of exactly this many raw bytes (the last may be shorter). */
export const PART_SIZE = 8 * 1024 * 1024;

/** The file name of part `index` inside `bodies/<2hex>/<sha256>/`. */
export function partName(index: number, zstd: boolean): string {
  return index.toString(16).padStart(8, '0') + (zstd ? '.zst' : '');
}

export interface Header {
  name: string;
  value: string;
}

export interface RequestRecord {
  method: string;
  /** Absolute URL, scheme included; redacted query parameters hold `btrfly-hmac:<hex>`. */
  url: string;
  /** Only the headers that select the response: those named by `Vary`, and `Accept`. Credentials redacted. */
  headers: Header[];
  /** SHA-256 (hex) of the request body, when there is one. */
  bodySha256?: string;
}

export interface ContentRecord {
  /** Bytes as they came over the wire after transfer decoding (Content-Encoding kept). */
  size: number;
  mimeType: string;
  /** SHA-256 hex of those bytes; the body's address in the archive. */
  sha256: string;
  /** The response's Content-Encoding as received (e.g. `gzip`), when not identity. */
  encoding?: string;
  /** How the parts are stored: all zstd, all raw, or some of each; `lfs`: one Git LFS object, raw or zstd (`btrfly init --lfs`). */
  storage: 'zstd' | 'raw' | 'mixed' | 'lfs';
  parts: number;
}

export interface ResponseRecord {
  status: number;
  statusText: string;
  httpVersion: string;
  /** Received order, hop-by-hop and volatile headers removed (volatile ones live in volatile.json). */
  headers: Header[];
  content: ContentRecord;
}

export interface Entry {
  request: RequestRecord;
  /** 0 for the first answer to this request; n for the n-th different answer to the same request. */
  ordinal: number;
  response: ResponseRecord;
}

/** A loosening of exact matching, stored with the recording so that it shows in review. */
export interface MatchRule {
  /** Host name the rule applies to; `*` for every host, `*.example.com` for subdomains. */
  host: string;
  /** Query parameters whose presence and value are ignored when matching. */
  ignoreQuery?: string[];
  /** Request headers ignored when matching. */
  ignoreHeaders?: string[];
}

export interface Redactions {
  /** Request header names (lower case) recorded as `[redacted]`. */
  headers: string[];
  /** Query parameter names whose value is stored as a keyed hash (`--redact-query`). */
  query: string[];
  /**
   * Query parameter names (lower case, matched in any case) whose value is stored as
   * `btrfly-redacted`, which matches any value: the names that carry secrets
   * (`SECRET_QUERY_PARAMS`) less `--keep-query`. Unlike `query` it needs no key, so the
   * recording plays back on any host. Absent in recordings made before it.
   */
  secretQuery?: string[];
  /**
   * Query names match whatever their case (`Token` as `token`); the names are then in lower case.
   * Set by every recording since the default list of secret names (`SECRET_QUERY_PARAMS`); an
   * earlier recording matched its names exactly, and still does.
   */
  queryAnyCase?: boolean;
}

export interface Manifest {
  btrflyFormat: typeof FORMAT_VERSION;
  rules: MatchRule[];
  redact: Redactions;
  entries: Entry[];
}

/** A volatile header of an entry, with its position in the full received header list. */
export interface VolatileHeader extends Header {
  index: number;
}

/** volatile.json: headers that differ on every fetch, kept beside the manifest. Keyed by `entryKey()`. */
export interface VolatileFile {
  btrflyFormat: typeof FORMAT_VERSION;
  entries: Record<string, VolatileHeader[]>;
}

/** Where a stored body's parts are (from the recording's tree). */
/**
 * What to do about a damaged or missing body, said wherever one is found: `verify --repair`
 * sets the damaged copy aside (git would otherwise keep it: a fetch or a re-recording skips
 * an object the store holds) and fetches it again (src/format/body-repair.ts).
 */
export function repairAdvice(tag?: string): string {
  const tagArg = tag ? ` ${tag}` : '';
  return `run "btrfly verify --repair${tagArg}" to set it aside and fetch it again from the archive's remotes (or, with no remote that has it, re-record the tag after the repair)`;
}

/** How a tag let go of a recording that was being played back: deleted, or moved to a recording whose history lacks it. */
export type TagLeft = 'deleted' | 'moved';

/**
 * What to do about a body that `btrfly gc` removed because its tag let go of the recording while
 * it was played back: no repair brings it back into that tag, so not {@link repairAdvice}.
 */
export function tagLeftAdvice(tag: string, commit: string, left: TagLeft): string {
  const rec = commit.slice(0, 12);
  return left === 'deleted'
    ? `tag "${tag}" was deleted while its recording ${rec} was played back, and btrfly gc has removed its bodies since: run "btrfly tags" to list the tags, or get the tag again ("btrfly pull REMOTE ${tag}")`
    : `tag "${tag}" was recorded again while its recording ${rec} was played back, and btrfly gc has removed that recording's bodies since: play back the tag's new recording, or record it again`;
}

export interface BodyLocation {
  sha256: string;
  /** Raw (decoded-from-storage) size of the whole body. */
  size: number;
  parts: PartLocation[];
  /**
   * Set for a body kept as a Git LFS object (src/format/lfs-store.ts): its bytes are the file
   * named by `sha256` in the LFS store, and its one part is the pointer blob (`storedSize` is the body's size).
   */
  lfs?: boolean;
  /**
   * The LFS oid of a body kept zstd in LFS mode (its one part is then `zstd`): the SHA-256 of the
   * stored zstd bytes, which name the object file; a raw LFS body's oid is `sha256`.
   */
  lfsOid?: string;
}

export interface PartLocation {
  /** git blob id of the stored part. */
  oid: string;
  /** Size of the stored blob (compressed size for zstd parts). */
  storedSize: number;
  zstd: boolean;
}

/** The result of writing one body. */
export interface StoredBody {
  sha256: string;
  size: number;
  /** git tree id of `bodies/<2hex>/<sha256>/`. */
  treeOid: string;
  storage: ContentRecord['storage'];
  parts: number;
}

/** A byte range, inclusive at both ends as in HTTP. */
export interface ByteRange {
  start: number;
  end: number;
}

/** A recording as loaded for playback or listing. */
export interface Recording {
  tag: string;
  commit: string;
  manifest: Manifest;
  volatile: VolatileFile;
  bodies: Map<string, BodyLocation>;
}

/**
 * Body storage behind a small stream interface (docs/architecture.md), the one every caller takes:
 * the recorder writes and locates through it, the player and the responder read through it. The
 * git archive (`Archive`) is one implementation; a test can hold another.
 */
export interface BodyStore {
  /** A writable that takes a body's bytes as they arrive; `done` resolves once stored. */
  createBodyWriter(opts?: { signal?: AbortSignal }): BodyWriter;
  /** Streams a stored body, or an inclusive byte range of it, reading only the parts it needs. */
  openBody(loc: BodyLocation, range?: ByteRange, opts?: { signal?: AbortSignal }): Readable;
  /**
   * A whole small body (one part ≤ 1 MiB) read, decompressed and checked in one buffer; undefined
   * when the body is larger, for callers to stream it with `openBody` instead.
   */
  readSmallBody(loc: BodyLocation): Promise<Buffer> | undefined;
  /** Where a body just stored is (its parts), for one whose writer could not say (`BodyWriter.location`). */
  locateBody(stored: StoredBody): Promise<BodyLocation>;
  /** How many copies of a body's bytes storing it writes, at most: for what a full disk asks to free. */
  readonly bodyCopies: number;
}

export interface BodyWriter extends Writable {
  /** Resolves after `end()` when every part is in the object store; rejects on error or abort. */
  readonly done: Promise<StoredBody>;
  /**
   * Where the parts just written are, known once `done` has resolved (the writer hashed each
   * part itself), so a caller that answers from the body needs no `locateBody` (a `git ls-tree`).
   */
  readonly location?: BodyLocation;
}
