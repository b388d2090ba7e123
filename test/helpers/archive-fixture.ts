import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { PROJECT_ROOT } from './cli';
import { run } from './proc';
import { tmpDir } from './tmp';

/** The example archive at the project root: the fixture of format compatibility. */
export const FIXTURE_ARCHIVE = join(PROJECT_ROOT, '.btrfly');

/**
 * Copies the example archive `.btrfly/` into a fresh temp dir and returns the copy's
 * path (`<tmp>/.btrfly`), so a test may write to it freely. Removed at the end of the file.
 */
export function copyFixtureArchive(source = FIXTURE_ARCHIVE): string {
  if (!existsSync(source)) {
    throw new Error(`no example archive at ${source}: record one first (see README, "example archive")`);
  }
  const target = join(tmpDir('btrfly-archive-'), '.btrfly');
  cpSync(source, target, { recursive: true, preserveTimestamps: true });
  return target;
}

/**
 * Runs `git fsck --strict` on a (bare) repository and throws with its output unless it
 * is clean: exit 0 and no error or warning line. Dangling objects are allowed (an
 * interrupted recording may leave some); missing, broken or malformed ones are not.
 * Returns fsck's output.
 */
export async function gitFsck(gitDir: string): Promise<string> {
  const result = await run('git', ['--git-dir', gitDir, 'fsck', '--strict', '--full', '--no-dangling', '--no-progress'], {
    timeoutMs: 300_000,
  });
  const output = `${result.stdout}${result.stderr}`;
  const problems = output.split('\n').filter((line) => /^(error|warning|missing|broken|bad)/i.test(line.trim()));
  if (result.code !== 0 || problems.length > 0) {
    throw new Error(`git fsck --strict of ${gitDir} is not clean (status ${result.code}):\n${output.trim()}`);
  }
  return output;
}

/** The git blob holding the first (for a body up to 8 MiB, the only) part of body `sha` in `tag`'s recording. */
export function bodyPartOid(archive: string, tag: string, sha: string): string {
  const line = execFileSync('git', ['-C', archive, 'ls-tree', '-r', tag, '--', `bodies/${sha.slice(0, 2)}/${sha}/`], { encoding: 'utf8' }).trim();
  return line.split(/\s+/)[2];
}

/** Flips the byte at `at` of a loose object's content, keeping its length: inflated, changed, deflated to the same path. */
export function damageLooseObject(archive: string, oid: string, at: number): void {
  const path = join(archive, 'objects', oid.slice(0, 2), oid.slice(2));
  const raw = inflateSync(readFileSync(path));
  raw[raw.indexOf(0) + 1 + at] ^= 0x5a;
  chmodSync(path, 0o644);
  writeFileSync(path, deflateSync(raw));
}

/**
 * Flips the byte at `at` of an object's content, loose or in a pack. A small body is in a pack
 * that btrfly's fast-import wrote without compression (src/format/git.ts), so its bytes are
 * found there as they are and flipped in place.
 */
export function damageObject(archive: string, oid: string, at: number): void {
  if (existsSync(join(archive, 'objects', oid.slice(0, 2), oid.slice(2)))) return damageLooseObject(archive, oid, at);
  const content = execFileSync('git', ['--git-dir', archive, 'cat-file', 'blob', oid]);
  const needle = content.subarray(at, at + 64);
  const packs = join(archive, 'objects', 'pack');
  for (const name of readdirSync(packs).filter((f) => f.endsWith('.pack'))) {
    const path = join(packs, name);
    const bytes = readFileSync(path);
    const found = bytes.indexOf(needle);
    if (found < 0) continue;
    bytes[found] ^= 0x5a;
    chmodSync(path, 0o644);
    writeFileSync(path, bytes);
    return;
  }
  throw new Error(`object ${oid} is neither loose nor stored as it is in a pack of ${archive}`);
}

/**
 * Flips one byte in the middle of a packed object's stored bytes (between its offset and the
 * next object's, as the pack's index lists them): git then finds it corrupt, whatever its
 * compression, and `git pack-objects` finds its CRC wrong.
 */
export function damagePackEntry(archive: string, oid: string): void {
  const packs = join(archive, 'objects', 'pack');
  for (const idx of readdirSync(packs).filter((f) => f.endsWith('.idx'))) {
    const listed = execFileSync('git', ['--git-dir', archive, 'show-index'], { input: readFileSync(join(packs, idx)), encoding: 'utf8' });
    const entries = listed
      .split('\n')
      .filter(Boolean)
      .map((l) => ({ offset: Number(l.split(' ')[0]), oid: l.split(' ')[1] }))
      .sort((a, b) => a.offset - b.offset);
    const i = entries.findIndex((e) => e.oid === oid);
    if (i < 0) continue;
    const path = join(packs, `${idx.slice(0, -'.idx'.length)}.pack`);
    const bytes = readFileSync(path);
    const end = i + 1 < entries.length ? entries[i + 1].offset : bytes.length - (oid.length / 2);
    bytes[Math.floor((entries[i].offset + end) / 2)] ^= 0x5a;
    chmodSync(path, 0o644);
    writeFileSync(path, bytes);
    return;
  }
  throw new Error(`object ${oid} is in no pack of ${archive}`);
}
