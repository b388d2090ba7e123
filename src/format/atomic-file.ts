/**
 * Files the user names (`btrfly export -o FILE`, `btrfly sbom -o FILE`) are written under a
 * temporary name beside the target and renamed over it at the end, so a failed or
 * interrupted write never leaves a truncated file under the name asked for.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Streams `source` into `file` atomically: a new temp file in the same directory (same file
 * system, so the rename is atomic), renamed over `file` once complete; removed on failure.
 * @throws the write's or the source's error
 */
export async function writeFileAtomically(file: string, source: Readable | Iterable<string | Buffer> | AsyncIterable<string | Buffer>): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${randomUUID().slice(0, 8)}.tmp`);
  try {
    await pipeline(source, createWriteStream(tmp, { flags: 'wx' }));
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
