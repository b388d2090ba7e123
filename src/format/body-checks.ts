/**
 * Per-part checks of stored bodies, so that playback verifies every byte before it sends it,
 * and a `Range` answer verifies only the parts it touches (docs/contract.md, "Integrity").
 *
 * A body's SHA-256 (in the manifest) covers the whole body, so on its own it can only be
 * checked once the last byte has been read. Beside it, each body gets a tag per 1 MiB part:
 * AES-128-GMAC (AES-GCM over no plaintext, the part as authenticated data) under a key kept in
 * the archive's `btrfly/checks/key` (mode 0600, never in git, never pushed). GMAC runs at
 * 5–7 GiB/s with AES-NI here, against 0.8 GiB/s for SHA-256 (docs/decisions.md,
 * "Integrity of played-back bodies"), so checking every part costs playback little.
 *
 * Tags are made only from bytes whose SHA-256 is the recorded one: by the body writer while it
 * hashes a body it records, or by a whole read that verified. A body without a checks file is
 * verified by its SHA-256 instead (and gets one). The file is `btrfly/checks/<2 hex>/<sha256>`:
 *
 *     "btrflyck" | nonce (8) | size (uint64 BE) | sha256 (32) | tag (16) per part | file tag (16)
 *
 * The IV of part i is `nonce | i` (uint32 BE), the file tag's `nonce | 0xffffffff`; the nonce is
 * random per file, so no IV repeats under one key. A file whose own tag, size or digest does
 * not match is ignored and removed (then the body is verified by its SHA-256 again).
 *
 * An archive btrfly may not write (a read-only mount, a fresh clone there without `btrfly/`)
 * keeps new checks in memory instead ({@link BodyChecks.readOnly}): the archive's key and files
 * are read when they are there, else a key is made for the run; what btrfly makes is kept in a map,
 * so a body is still verified before any of its bytes is sent, and nothing is written.
 */
import { createCipheriv, createSecretKey, randomBytes, timingSafeEqual, type CipherGCM, type KeyObject } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { BtrflyError } from '../errors';

/** Bytes covered by one tag. A divisor of the storage part size (8 MiB) and the playback read size. */
export const CHECK_PART = 1024 * 1024;

const MAGIC = Buffer.from('btrflyck', 'latin1');
const TAG = 16;
const HEADER = MAGIC.length + 8 + 8 + 32;
const FILE_TAG_INDEX = 0xffffffff;
/** `gc` removes a temp file older than this (its writer died), and spares newer files while a recorder runs. */
const RECENT_MS = 60 * 60 * 1000;

function iv(nonce: Buffer, index: number): Buffer {
  const out = Buffer.alloc(12);
  nonce.copy(out, 0, 0, 8);
  out.writeUInt32BE(index, 8);
  return out;
}

/**
 * The key is a KeyObject made once per archive: given as a Buffer, every cipher (one a 1 MiB
 * part) imported the key again (`getKeyObjectSlots` and `createCipherBase`, ~50 ms a GiB recorded).
 */
function gmac(key: KeyObject, nonce: Buffer, index: number): CipherGCM {
  return createCipheriv('aes-128-gcm', key, iv(nonce, index));
}

function finish(c: CipherGCM): Buffer {
  c.final();
  return c.getAuthTag();
}

/** The tags of one body, read back from its checks file. */
export class PartTags {
  constructor(
    private readonly key: KeyObject,
    private readonly nonce: Buffer,
    /** One tag per {@link CHECK_PART} bytes of the body, in order. */
    readonly tags: readonly Buffer[],
  ) {}

  /** Whether `bytes` are exactly part `index` of the body (its whole part, not a slice of it). */
  verify(index: number, bytes: Buffer): boolean {
    const want = this.tags[index];
    if (!want) return false;
    const c = gmac(this.key, this.nonce, index);
    c.setAAD(bytes);
    return timingSafeEqual(finish(c), want);
  }
}

/** Tags a body's bytes as they stream by, one tag per {@link CHECK_PART}, chunks of any size. */
export class PartTagger {
  readonly nonce = randomBytes(8);
  readonly tags: Buffer[] = [];
  private current?: CipherGCM;
  private filled = 0;

  constructor(private readonly key: KeyObject) {}

  update(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      this.current ??= gmac(this.key, this.nonce, this.tags.length);
      const n = Math.min(chunk.length - offset, CHECK_PART - this.filled);
      this.current.setAAD(offset === 0 && n === chunk.length ? chunk : chunk.subarray(offset, offset + n));
      this.filled += n;
      offset += n;
      if (this.filled === CHECK_PART) this.closePart();
    }
  }

  /** The tags of every part, the last (short) one included. */
  finish(): Buffer[] {
    if (this.current) this.closePart();
    return this.tags;
  }

  private closePart(): void {
    this.tags.push(finish(this.current!));
    this.current = undefined;
    this.filled = 0;
  }
}

/** The checks files of one archive, `<archive>/btrfly/checks`, and the key they are made with. */
export class BodyChecks {
  private constructor(
    readonly dir: string,
    private readonly key: KeyObject,
    /** False for an archive btrfly may not write: every checks file it makes is kept in {@link kept} only. */
    private readonly onDisk = true,
  ) {}

  /** Checks files kept for this process, by path (a few dozen bytes a body): those of a read-only archive, and those the disk refused. */
  private readonly kept = new Map<string, Buffer>();

  /**
   * The checks of an archive btrfly may not write: its key and files read where they are (a
   * read-only mount of an archive that has them), else a key made for this process; the checks
   * it makes are kept in memory (a few dozen bytes a body), gone with the process.
   */
  static async readOnly(dir: string): Promise<BodyChecks> {
    const key = await readFile(join(dir, 'key')).catch(() => undefined);
    return new BodyChecks(dir, createSecretKey(key?.length === 16 ? key : randomBytes(16)), false);
  }

  /** Opens the store, making its key on first use (written aside and linked into place: two processes agree on one). */
  static async open(dir: string): Promise<BodyChecks> {
    await mkdir(dir, { recursive: true });
    const keyPath = join(dir, 'key');
    let key = await readFile(keyPath).catch(() => undefined);
    if (key?.length !== 16) {
      const tmp = join(dir, `key.${randomUUID()}`);
      await writeFile(tmp, randomBytes(16), { mode: 0o600 });
      if (key === undefined) {
        // link() fails when the key exists: then the other process's key is the one.
        await link(tmp, keyPath).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e;
        });
        await unlink(tmp);
      } else {
        // A key of another length (cut short by a crash) can make no check: replace it. Checks
        // files made with it, if any, then fail their own tag and are made again.
        await rename(tmp, keyPath);
      }
      key = await readFile(keyPath);
      if (key.length !== 16) throw new BtrflyError('STORAGE', `${keyPath} is not a key of 16 bytes: delete it (btrfly makes a new one)`);
    }
    return new BodyChecks(dir, createSecretKey(key));
  }

  private path(sha256: string): string {
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  /** A tagger for a body about to be read or written; its tags are stored with {@link write}. */
  tagger(): PartTagger {
    return new PartTagger(this.key);
  }

  /**
   * The tags of a body, or undefined when it has no checks file, or one that does not check out
   * (damaged, or for another size): that one is removed, and the body is checked by its SHA-256.
   */
  async read(sha256: string, size: number): Promise<PartTags | undefined> {
    const path = this.path(sha256);
    const file = this.kept.get(path) ?? (await readFile(path).catch(() => undefined));
    if (!file) return undefined;
    const parts = Math.ceil(size / CHECK_PART);
    const nonce = file.subarray(MAGIC.length, MAGIC.length + 8);
    const ok =
      file.length === HEADER + (parts + 1) * TAG &&
      file.subarray(0, MAGIC.length).equals(MAGIC) &&
      Number(file.readBigUInt64BE(MAGIC.length + 8)) === size &&
      file.subarray(MAGIC.length + 16, HEADER).toString('hex') === sha256 &&
      (() => {
        const c = gmac(this.key, nonce, FILE_TAG_INDEX);
        c.setAAD(file.subarray(0, file.length - TAG));
        return timingSafeEqual(finish(c), file.subarray(file.length - TAG));
      })();
    if (!ok) {
      // A read-only archive's own file is left as it is (its key may be another): the body is checked by its SHA-256.
      this.kept.delete(path);
      if (this.onDisk) await rm(path, { force: true }).catch(() => undefined);
      return undefined;
    }
    const tags: Buffer[] = [];
    for (let i = 0; i < parts; i++) tags.push(file.subarray(HEADER + i * TAG, HEADER + (i + 1) * TAG));
    return new PartTags(this.key, nonce, tags);
  }

  /**
   * Removes the checks of bodies not in `keep`, and temp files of a writer that died (older than
   * an hour). @param opts.spareRecent keep files made in the last hour too (a recorder is running).
   */
  async prune(keep: ReadonlySet<string>, opts: { spareRecent?: boolean } = {}): Promise<void> {
    if (!this.onDisk) return;
    const now = Date.now();
    const recent = (path: string): Promise<boolean> => stat(path).then((s) => now - s.mtimeMs < RECENT_MS, () => true);
    for (const prefix of await readdir(this.dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      for (const name of await readdir(join(this.dir, prefix)).catch(() => [] as string[])) {
        const path = join(this.dir, prefix, name);
        const temp = name.endsWith('.tmp');
        if (!temp && keep.has(name)) continue;
        if ((temp || opts.spareRecent) && (await recent(path))) continue;
        await rm(path, { force: true });
      }
    }
  }

  /**
   * Stores the tags of a body whose SHA-256 was just checked to be `sha256` (by its writer, or by
   * a whole read): best-effort, since a body without checks is still verified by its SHA-256.
   */
  async write(sha256: string, size: number, tagger: PartTagger): Promise<void> {
    const tags = tagger.finish();
    if (tags.length !== Math.ceil(size / CHECK_PART)) return;
    const head = Buffer.alloc(HEADER);
    MAGIC.copy(head, 0);
    tagger.nonce.copy(head, MAGIC.length);
    head.writeBigUInt64BE(BigInt(size), MAGIC.length + 8);
    Buffer.from(sha256, 'hex').copy(head, MAGIC.length + 16);
    const body = Buffer.concat([head, ...tags]);
    const c = gmac(this.key, tagger.nonce, FILE_TAG_INDEX);
    c.setAAD(body);
    const path = this.path(sha256);
    const file = Buffer.concat([body, finish(c)]);
    if (!this.onDisk) {
      this.kept.set(path, file);
      return;
    }
    const tmp = `${path}.${randomUUID()}.tmp`;
    try {
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(tmp, file);
      await rename(tmp, path);
    } catch {
      // Not on disk (no space, a path that is not a directory): kept for this process, as a
      // read-only archive's are, so a range of the body still has its checks.
      this.kept.set(path, file);
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}
