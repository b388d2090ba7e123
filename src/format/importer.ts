/**
 * `btrfly import`: a HAR file into one recording of a tag. Each body goes through the
 * archive's BodyWriter and each entry is built with the recorder's own rules (which
 * request headers select the answer, which response headers are volatile, ordinals for
 * repeated requests, a URL's `user:password@` dropped and the tag's `--redact-query` names
 * hashed), so an imported tag plays back like a recorded one and stores no more secrets.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import { fromHar, type ImportedEntry } from './har';
import { recordingRedactions, redactHeaderUrls, redactUrl, schemaChecker, selectingRequestHeaders, splitHeaders } from './manifest';
import { OrdinalCounter } from './match';
import { printable } from './printable';
import type { Entry, Header, MatchRule, Redactions, StoredBody } from './types';
import { beginRecording } from './recording-writer';

export interface ImportOptions {
  /** Keep the tag's previous entries and add to them. */
  append?: boolean;
  /** Request headers to store as redacted, beyond the credential headers that always are. */
  redactHeaders?: string[];
  /** The `--redact-query` key (the user's, from the config directory), asked for only when the tag redacts a query. */
  redactKey: () => Buffer;
}

export interface ImportResult {
  tag: string;
  commit: string;
  /** Entries written into the recording. */
  entries: number;
  /** Entries left out: a success without a body in the HAR, or a repeat of the same answer. */
  skipped: Array<{ method: string; url: string; reason: string }>;
}

/** How many bodies of a HAR are stored at once (their entries still go in in order). */
const IMPORT_AHEAD = 32;

const NO_BODY = 'the HAR holds no body for it';

/** An HTTP token (RFC 9110 §5.6.2): a method or a header name. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What Node's HTTP writer lets through in a header value or a reason phrase (else playback fails that answer). */
const FIELD_TEXT = /^[\t\x20-\x7e\x80-\xff]*$/;

let entryChecker: ((entry: Entry) => string | undefined) | undefined;
/** The manifest schema's verdict on one entry: the first problem, or undefined. */
const checkEntry = (entry: Entry): string | undefined => (entryChecker ??= schemaChecker((ref) => ref('entry')))(entry);
let settingsChecker: ((value: unknown) => string | undefined) | undefined;
/** The manifest schema's verdict on a btrfly HAR's `{rules, redact}`. */
const checkSettings = (value: unknown): string | undefined =>
  (settingsChecker ??= schemaChecker((ref) => ({ type: 'object', properties: { rules: { type: 'array', items: ref('rule') }, redact: ref('redact') } })))(value);

/** Names in `a`, then those of `b` not in it. */
const union = (a: readonly string[], b: readonly string[]): string[] => [...new Set([...a, ...b])];

/**
 * The matching rules and redactions a btrfly HAR carries (the recording's, as exported), or
 * none; one line when they are not what btrfly writes.
 */
function harSettings(har: { rules?: unknown; redact?: unknown }, where: string): { rules: MatchRule[]; redact: Redactions } {
  const settings = { rules: har.rules ?? [], redact: har.redact ?? { headers: [], query: [] } };
  const invalid = checkSettings(settings);
  if (invalid) throw new BtrflyError('IMPORT', `${where}: its _btrflyRules or _btrflyRedact are not btrfly's (${invalid}): remove them from the HAR or export it again`);
  return settings as { rules: MatchRule[]; redact: Redactions };
}

/**
 * Why an entry of a HAR cannot be played back, so it is left out: a request that got no HTTP
 * answer (status 0: blocked, cancelled or failed in the browser), a `data:` or `blob:` URL,
 * or a method, header or reason phrase HTTP cannot carry.
 */
function whyUnplayable(e: ImportedEntry): string | undefined {
  const { status } = e.response;
  if (status < 100 || status > 999) return `it got no HTTP answer (status ${status}: the request failed or was blocked)`;
  if (!/^https?:\/\//i.test(e.request.url)) return 'it is not an http or https URL';
  if (!TOKEN.test(e.request.method)) return 'its method is not an HTTP method';
  if (!FIELD_TEXT.test(e.response.statusText)) return 'its status text holds characters HTTP cannot carry';
  const bad = e.response.headers.find((h) => !TOKEN.test(h.name) || !FIELD_TEXT.test(h.value));
  if (bad) return `its response header ${JSON.stringify(bad.name)} holds characters HTTP cannot carry`;
  return undefined;
}

const NO_BODY_NEEDED = (status: number, method: string): boolean =>
  method === 'HEAD' || status < 200 || status === 204 || status === 304 || status >= 300;

/**
 * Imports the HAR file `file` as a new recording of `tag`.
 * @throws BtrflyError IMPORT when the file is not a HAR; TAG_BUSY, BAD_TAG_NAME from the archive
 */
export async function importHar(archive: Archive, file: string, tag: string, opts: ImportOptions): Promise<ImportResult> {
  const isFile = await stat(file).then((s) => s.isFile(), () => false);
  if (!isFile) throw new BtrflyError('IMPORT', `cannot read ${file}: no such file: give the path of a .har file`, { data: { file } });
  const har = await fromHar(createReadStream(file), basename(file));
  if (har.entries.length === 0) {
    throw new BtrflyError('IMPORT', `${basename(file)} has no entries: nothing to import; export the HAR again with the requests in it`);
  }
  // A HAR btrfly exported carries the recording's rules and redactions: without them its redacted
  // queries and loosened matches would miss.
  const exported = harSettings(har, basename(file));
  const writer = await beginRecording(archive, tag, { append: opts.append, session: `import-${process.pid}` });
  try {
    const base = writer.baseCommit();
    const carried = opts.append && base ? (await archive.readRecording(tag, base)).manifest.entries : [];
    const prior = writer.redactions();
    const from = exported.redact;
    const merged: Redactions = {
      ...prior,
      headers: union(prior.headers, from.headers),
      query: union(prior.query, from.query),
      ...((prior.queryAnyCase || from.queryAnyCase) && { queryAnyCase: true }),
      ...((prior.secretQuery || from.secretQuery) && { secretQuery: union(prior.secretQuery ?? [], from.secretQuery ?? []) }),
    };
    const redact: Redactions = recordingRedactions(tag, merged, { headers: opts.redactHeaders, carried });
    await writer.setRedactions(redact);
    const rules = [...writer.rules()];
    for (const r of exported.rules) if (!rules.some((k) => JSON.stringify(k) === JSON.stringify(r))) rules.push(r);
    if (rules.length > writer.rules().length) await writer.setRules(rules);
    // As the recorder stores a URL: without user:password@, the redacted query values hashed (a
    // value a btrfly HAR holds hashed already stays as it is; one it holds in clear is hashed).
    const key = redact.query.length > 0 ? opts.redactKey() : Buffer.alloc(0);
    const counter = new OrdinalCounter();
    const skipped: ImportResult['skipped'] = [];
    let added = 0;
    // Bodies are stored up to IMPORT_AHEAD at a time and their entries added in the HAR's order:
    // a small body counts as stored once git's pack of it is on disk, which a batch of bodies
    // shares (src/format/git.ts, storeSmallBody), so one at a time would wait for each.
    const ahead: Array<{ imported: ImportedEntry; url: string; stored?: Promise<StoredBody> }> = [];
    const addNext = async (): Promise<void> => {
      const { imported, url, stored: storing } = ahead.shift()!;
      const method = imported.request.method;
      if (!storing) {
        skipped.push({ method, url, reason: NO_BODY });
        return;
      }
      const stored = await storing;
      const { entry, volatile } = entryFor(imported, url, stored, redact, key);
      const { ordinal, duplicate } = counter.assign(entry.request, { status: entry.response.status, sha256: stored.sha256 });
      if (duplicate) {
        skipped.push({ method, url, reason: 'it repeats the answer before it' });
        return;
      }
      entry.ordinal = imported.ordinal ?? ordinal;
      // The reader checks every manifest against its schema: an entry it would refuse must not make the tag unreadable.
      const invalid = checkEntry(entry);
      if (invalid) throw new BtrflyError('IMPORT', `${basename(file)}: the entry for ${method} ${url} cannot be stored (${invalid}): remove it from the HAR and retry`);
      await writer.addEntry(entry, volatile, stored);
      added++;
    };
    for (const imported of har.entries) {
      const unplayable = whyUnplayable(imported);
      if (unplayable) {
        skipped.push({ method: imported.request.method, url: imported.request.url, reason: unplayable });
        continue;
      }
      const url = redactUrl(imported.request.url, redact, key);
      const bodyless = !imported.hasBody && !NO_BODY_NEEDED(imported.response.status, imported.request.method);
      const stored = bodyless ? undefined : storeBody(archive, imported);
      // Reported when its turn comes (addNext); must not go unhandled meanwhile.
      stored?.catch(() => undefined);
      ahead.push({ imported, url, stored });
      if (ahead.length >= IMPORT_AHEAD) await addNext();
    }
    while (ahead.length) await addNext();
    if (added === 0) {
      const other = skipped.find((k) => k.reason !== NO_BODY);
      if (other) throw new BtrflyError('IMPORT', `no entry of ${basename(file)} can be played back (the first: ${printable(other.method)} ${printable(other.url)}: ${other.reason}): nothing to import`);
      throw new BtrflyError('IMPORT', `no entry of ${basename(file)} has a response body: export the HAR again with content ("Save all as HAR with content")`);
    }
    const { commit } = await writer.seal({ message: `import ${tag}: ${added} entries from ${basename(file)}${har.creator ? ` (${har.creator})` : ''}\n` });
    return { tag, commit, entries: added, skipped };
  } catch (e) {
    await writer.abandon();
    throw e;
  }
}

async function storeBody(archive: Archive, imported: ImportedEntry): Promise<StoredBody> {
  const writer = archive.createBodyWriter();
  await pipeline(imported.openBody(), writer);
  return writer.done;
}

function headerValue(headers: readonly Header[], name: string): string | undefined {
  return headers.find((h) => h.name.toLowerCase() === name)?.value;
}

/** The manifest entry of an imported exchange, as the recorder would have built it. */
function entryFor(imported: ImportedEntry, url: string, stored: StoredBody, redact: Redactions, key: Buffer): { entry: Entry; volatile: ReturnType<typeof splitHeaders>['volatile'] } {
  const received = imported.response.headers;
  const { kept, volatile } = splitHeaders(received);
  const encoding = headerValue(received, 'content-encoding');
  const entry: Entry = {
    request: {
      method: imported.request.method,
      url,
      headers: selectingRequestHeaders(imported.request.headers, headerValue(received, 'vary'), redact, encoding),
      ...(imported.request.bodySha256 ? { bodySha256: imported.request.bodySha256 } : {}),
    },
    ordinal: 0,
    response: {
      status: imported.response.status,
      statusText: imported.response.statusText,
      httpVersion: imported.response.httpVersion,
      headers: redactHeaderUrls(kept, redact, key),
      content: {
        size: stored.size,
        mimeType: imported.response.mimeType || headerValue(received, 'content-type') || '',
        sha256: stored.sha256,
        ...(encoding && encoding.toLowerCase() !== 'identity' ? { encoding } : {}),
        storage: stored.storage,
        parts: stored.parts,
      },
    },
  };
  return { entry, volatile };
}
