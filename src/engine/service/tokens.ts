import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import * as lockfile from 'proper-lockfile';
import { BtrflyError } from '../../errors';
import { makeDirs, MakeDirError } from '../../format/make-dirs';
import { tagNameProblem } from '../../format/names';
import { printable } from '../../format/printable';
import { checkPrivateHandle, writePrivateFile } from '../base/private-file';
import type { Mode } from '../proxy/session';

/** What a token may do: open record or playback sessions, or anything (admin). */
export type Scope = Mode | 'admin';
export const SCOPES: readonly Scope[] = ['record', 'playback', 'admin'];

/** A token as the store keeps it: plain data, the secret only as its SHA-256. */
export interface TokenRecord {
  id: string;
  name?: string;
  scopes: Scope[];
  /** Tag patterns: `*` matches any run of characters, `/` included (`team-a/*`). */
  tags: string[];
  /** SHA-256 of the secret part, hex. */
  hash: string;
  created: string;
}

interface TokenFile {
  btrflyTokens: 1;
  tokens: TokenRecord[];
}

const PREFIX = 'btf';

/**
 * The service's token store: one JSON file (mode 0600) of hashed tokens. A token is
 * `btf_<id>_<secret>`; the id finds the record, the secret is compared by hash in constant
 * time. The file is read on every check, so a revoke takes effect at the next API call.
 * SHA-256 (not scrypt) is enough: the secret is 24 random bytes, not a password.
 */
export class TokenStore {
  constructor(readonly file: string) {}

  /** Creates a token; the returned secret is shown once and never stored. */
  async create(init: { scopes: Scope[]; tags: string[]; name?: string }): Promise<{ token: string; record: TokenRecord }> {
    if (init.scopes.length === 0) throw new BtrflyError('USAGE', 'a token needs at least one scope: --scope record,playback (or admin)');
    for (const s of init.scopes) {
      if (!SCOPES.includes(s)) throw new BtrflyError('USAGE', `unknown scope "${s}": use record, playback or admin`);
    }
    if (init.tags.length === 0) throw new BtrflyError('USAGE', "a token needs at least one tag pattern: --tags 'team-a/*' (or '*' for every tag)");
    for (const pattern of init.tags) {
      // A pattern is a tag name with * in it: one that no tag can match (or that a terminal would not show as it is) is a typo.
      const why = pattern === '*' ? undefined : tagNameProblem(pattern.replace(/\*/g, 'x'));
      if (why) throw new BtrflyError('USAGE', `tag pattern "${printable(pattern)}" can match no tag (${why}): write it as a tag name with * for any run of characters, e.g. 'team-a/*'`);
    }
    if (init.name !== undefined && printable(init.name, true) !== init.name) {
      throw new BtrflyError('USAGE', `the token name "${printable(init.name, true)}" holds characters a terminal would not show as they are: use plain text`);
    }
    // admin may do anything to every tag (authorize, mayRead): patterns beside it would only look like a limit.
    if (init.scopes.includes('admin') && init.tags.some((t) => t !== '*')) {
      throw new BtrflyError('USAGE', `an admin token covers every tag, not only ${init.tags.join(',')}: give it --tags '*', or give a team's token --scope record,playback`);
    }
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const record: TokenRecord = { id, ...(init.name ? { name: init.name } : {}), scopes: [...new Set(init.scopes)], tags: init.tags, hash: sha256(secret), created: new Date().toISOString() };
    await this.update((data) => void data.tokens.push(record));
    return { token: `${PREFIX}_${id}_${secret}`, record };
  }

  async list(): Promise<TokenRecord[]> {
    return (await this.read()).tokens;
  }

  async revoke(id: string): Promise<TokenRecord> {
    return this.update((data) => {
      const found = data.tokens.find((t) => t.id === id);
      if (!found) throw new BtrflyError('NOT_FOUND', `no token ${id} in ${this.file}: run "btrfly token list"`);
      data.tokens = data.tokens.filter((t) => t !== found);
      return found;
    });
  }

  /**
   * The token's record, or an UNAUTHORIZED error; the secret is compared in constant time.
   * @param records the store's tokens when the caller has just read them, else the store is read
   */
  async verify(token: string | undefined, records?: readonly TokenRecord[]): Promise<TokenRecord> {
    const m = token ? /^btf_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$/.exec(token) : null;
    const record = m ? (records ?? (await this.list())).find((t) => t.id === m[1]) : undefined;
    // Hash even when nothing matched, so the time taken does not tell which part was wrong.
    const given = Buffer.from(sha256(m?.[2] ?? ''), 'hex');
    const stored = Buffer.from(record?.hash ?? '0'.repeat(64), 'hex');
    if (!record || !timingSafeEqual(given, stored)) {
      throw new BtrflyError('UNAUTHORIZED', 'the btrfly service refused the token (unknown, revoked or mistyped): ask for a new one ("btrfly token create") and run "btrfly login URL --token T"');
    }
    return record;
  }

  /** The store as it is now; a store that group or others may read is refused (chmod 600). */
  private async read(): Promise<TokenFile> {
    let handle;
    try {
      handle = await open(this.file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { btrflyTokens: 1, tokens: [] };
      throw e;
    }
    let text: string;
    try {
      await checkPrivateHandle(handle, this.file, 'token store');
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
    let data: TokenFile;
    try {
      data = JSON.parse(text) as TokenFile;
    } catch {
      data = {} as TokenFile;
    }
    if (data?.btrflyTokens !== 1 || !Array.isArray(data.tokens)) throw new BtrflyError('CONFIG', `${this.file} is not a btrfly token store (not JSON, or not {"btrflyTokens": 1, "tokens": [...]}): restore it from a backup, or pass --tokens another file`);
    // A hand-edited record would otherwise fail later as a TypeError, or grant what it names (a scope no one can create).
    data.tokens.forEach((t, i) => {
      const why = tokenRecordProblem(t);
      if (why) throw new BtrflyError('CONFIG', `token ${i + 1} of ${this.file} is damaged (${why}): restore the file from a backup, or mend or delete that record by hand`);
    });
    return data;
  }

  /**
   * Read, change, write under the store's lock (`<store>.lock`, proper-lockfile as the tags'
   * locks), so that a create running beside a revoke cannot write back the revoked token.
   * A change holds the lock for a read, a write and an fsync; waiters retry for up to a minute,
   * since a loaded disk can make each fsync take a good part of a second.
   */
  private async update<T>(change: (data: TokenFile) => T): Promise<T> {
    await makeDirs(path.dirname(this.file), 0o700).catch((e: unknown) => {
      if (!(e instanceof MakeDirError)) throw e;
      throw new BtrflyError('CONFIG', `cannot create the token store ${this.file}: ${e.message}: pass --tokens a file in a directory that can be made`, { cause: e });
    });
    const release = await lockfile
      .lock(this.file, { realpath: false, lockfilePath: `${this.file}.lock`, stale: 10_000, retries: { retries: 600, minTimeout: 10, maxTimeout: 100 } })
      .catch((e: unknown) => {
        throw new BtrflyError('LOCKED', `the token store ${this.file} stays locked by another btrfly (${(e as Error).message}): try again`);
      });
    try {
      const data = await this.read();
      const result = change(data);
      await this.write(data);
      return result;
    } finally {
      await release();
    }
  }

  /** A new file (0600, created exclusively under a random name), flushed to disk, then renamed over the store. */
  private async write(data: TokenFile): Promise<void> {
    await writePrivateFile(this.file, JSON.stringify(data, null, 2) + '\n');
  }
}

/** What is wrong with a record read from the store, or undefined when it is one `create` could have written. */
function tokenRecordProblem(t: unknown): string | undefined {
  const r = t as Partial<Record<keyof TokenRecord, unknown>> | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'not an object';
  if (typeof r.id !== 'string' || !/^[0-9a-f]{12}$/.test(r.id)) return 'its id is not 12 hex digits';
  if (typeof r.hash !== 'string' || !/^[0-9a-f]{64}$/.test(r.hash)) return `token ${r.id}: its hash is not a SHA-256 in hex`;
  const strings = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');
  if (!strings(r.scopes) || !(r.scopes as string[]).every((x) => (SCOPES as string[]).includes(x))) return `token ${r.id}: its scopes are not a list of ${SCOPES.join(', ')}`;
  if (!strings(r.tags)) return `token ${r.id}: its tags are not a list of patterns`;
  if (r.name !== undefined && typeof r.name !== 'string') return `token ${r.id}: its name is not a string`;
  return undefined;
}

/**
 * Refuses what the token may not do, in one line: a mode outside its scopes, a tag outside
 * its patterns. `admin` may do anything.
 */
export function authorize(token: TokenRecord, mode: Mode, tag: string): void {
  if (token.scopes.includes('admin')) return;
  if (!token.scopes.includes(mode)) {
    throw new BtrflyError('FORBIDDEN', `token ${token.id} may not ${mode} (its scopes: ${token.scopes.join(',')}): ask for a token with --scope ${mode}`);
  }
  if (!token.tags.some((p) => tagMatches(p, tag))) {
    throw new BtrflyError('FORBIDDEN', `token ${token.id} may not touch tag "${tag}" (its tags: ${token.tags.join(',')}): use a tag it covers or ask for a token that covers "${tag}"`);
  }
}

/**
 * Refuses a session the token may not open: its mode, and for a playback with `append` also
 * record, since the misses are fetched upstream and sealed as a new recording of the tag.
 */
export function authorizeSession(token: TokenRecord, session: { mode: Mode; append?: boolean }, tag: string): void {
  authorize(token, session.mode, tag);
  if (session.mode === 'playback' && session.append) authorize(token, 'record', tag);
}

/** True when the token may see `tag` in the API and the web UI: admin, or a tag pattern covers it. */
export function mayRead(token: TokenRecord, tag: string): boolean {
  return token.scopes.includes('admin') || token.tags.some((p) => tagMatches(p, tag));
}

/** Refuses, in one line, a read of a tag the token's patterns do not cover. */
export function authorizeRead(token: TokenRecord, tag: string): void {
  if (!mayRead(token, tag)) {
    throw new BtrflyError('FORBIDDEN', `token ${token.id} may not read tag "${tag}" (its tags: ${token.tags.join(',')}): ask for a token that covers "${tag}"`);
  }
}

/** `team-a/*` matches `team-a/x` and `team-a/x/y`; `*` alone matches every tag. */
export function tagMatches(pattern: string, tag: string): boolean {
  const re = new RegExp('^' + pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
  return re.test(tag);
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
