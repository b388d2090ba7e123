import { promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { runChecked } from './command-runner';
import { captureFile, digestOf, restoreFile, sameDigest, type FileDigest, type FileSnapshot } from './file-snapshot';
import type { CommandRunner, DebianCerts } from './types';

/** One file of the trust store that btrfly changes: what it held before, and a digest of what btrfly put there. */
export interface TrustFileChange {
  path: string;
  before: FileSnapshot;
  after: FileDigest;
}

/**
 * btrfly's CA in Debian's store, made the way `update-ca-certificates` makes it, without
 * rebuilding the store (3–8 s): the anchor in the local dir, `/etc/ssl/certs/btrfly-NAME.pem`
 * linking to it, the subject-hash link `HHHHHHHH.N` to that, and the PEM at the end of the
 * bundle; then the hooks are told `+PEM`. Undone by putting each file back from its snapshot,
 * byte for byte, file types included.
 */
export interface DebianTrustPlan {
  pem: string;
  files: TrustFileChange[];
  /** What to write, in the order of `files`. */
  writes: FileSnapshot[];
}

/**
 * Plans the change: snapshots of every path it will touch and what each will hold. Undefined
 * when the store is not laid out as `update-ca-certificates` leaves it (the bundle is not a
 * plain file): then the distribution's tool does the work.
 */
export async function planDebianTrust(run: CommandRunner, certs: DebianCerts, anchor: string, caName: string, caPem: string): Promise<DebianTrustPlan | undefined> {
  const bundle = path.join(certs.dir, certs.bundle);
  const bundleBefore = await captureFile(bundle);
  if (bundleBefore.type !== 'file') return undefined;
  const pemText = caPem.endsWith('\n') ? caPem : caPem + '\n';
  const pem = path.join(certs.dir, `btrfly-${caName}.pem`);
  const hashLink = await freeHashLink(certs.dir, await subjectHash(run, pemText), pem);
  const old = Buffer.from(bundleBefore.base64, 'base64');
  // update-ca-certificates adds a missing final newline to each certificate (sed '$a\').
  const sep = old.length > 0 && old[old.length - 1] !== 0x0a ? '\n' : '';
  const { mode, uid, gid } = bundleBefore;
  const anchorBefore = await captureFile(anchor);
  const writes: [string, FileSnapshot, FileSnapshot][] = [
    [anchor, anchorBefore, { type: 'file', mode: 0o644, uid: 0, gid: 0, base64: Buffer.from(pemText).toString('base64') }],
    [pem, await captureFile(pem), { type: 'symlink', target: anchor }],
    [hashLink, await captureFile(hashLink), { type: 'symlink', target: path.basename(pem) }],
    [bundle, bundleBefore, { type: 'file', mode, uid, gid, base64: Buffer.concat([old, Buffer.from(sep + pemText)]).toString('base64') }],
  ];
  return {
    pem,
    files: writes.map(([file, before, after]) => ({ path: file, before, after: digestOf(after) })),
    writes: writes.map(([, , after]) => after),
  };
}

/** Makes the planned change, file by file (each one atomically). */
export async function writeDebianTrust(plan: DebianTrustPlan): Promise<void> {
  for (const [i, f] of plan.files.entries()) {
    await fs.mkdir(path.dirname(f.path), { recursive: true, mode: 0o755 });
    await restoreFile(f.path, plan.writes[i]);
  }
}

/**
 * Puts back every file still as btrfly left it (or not yet changed: `apply` was cut short).
 * Returns the files something else changed meanwhile (say, `update-ca-certificates` run by
 * a package install): those are left alone, and the store must then be rebuilt by the tool.
 */
export async function restoreDebianTrust(files: TrustFileChange[]): Promise<{ changedByOthers: string[] }> {
  const changedByOthers: string[] = [];
  for (const f of [...files].reverse()) {
    const now = digestOf(await captureFile(f.path));
    if (sameDigest(now, f.after) || sameDigest(now, digestOf(f.before))) await restoreFile(f.path, f.before);
    else changedByOthers.push(f.path);
  }
  return { changedByOthers };
}

/**
 * Tells `update-ca-certificates`' hooks (Java's keystore, …) that a certificate was added
 * (`+PEM`) or removed (`-PEM`), as the tool does: each executable of the directory whose name
 * run-parts(8) accepts, in order, the line on its stdin. As with the tool, a failing hook does
 * not undo the change.
 */
export async function runTrustHooks(run: CommandRunner, hooksDir: string, line: string): Promise<void> {
  const names = await fs.readdir(hooksDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => /^[A-Za-z0-9_-]+$/.test(n)).sort()) {
    const hook = path.join(hooksDir, name);
    const st = await fs.stat(hook).catch(() => undefined);
    if (!st?.isFile() || !(await fs.access(hook, fsc.X_OK).then(() => true, () => false))) continue;
    await run([hook], line + '\n');
  }
}

/** OpenSSL's subject-name hash, the name of the link by which `-CApath` lookups find the certificate. */
async function subjectHash(run: CommandRunner, pem: string): Promise<string> {
  const { stdout } = await runChecked(run, ['openssl', 'x509', '-noout', '-subject_hash'], pem);
  return stdout.trim();
}

/** `HASH.N` with the lowest N not taken by another certificate (as `openssl rehash` numbers them). */
async function freeHashLink(dir: string, hash: string, pem: string): Promise<string> {
  for (let n = 0; ; n++) {
    const link = path.join(dir, `${hash}.${n}`);
    const target = await fs.readlink(link).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : ''));
    if (target === null || target === path.basename(pem)) return link;
  }
}
