import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BtrflyError } from '../../../errors';
import { writePrivateFile } from '../../base/private-file';
import type { TrustFileChange } from './debian-trust';
import { syncDir, type FileSnapshot } from './file-snapshot';

/** One change `apply` made, with what is needed to undo it. Plain JSON. */
export type JournalEntry =
  | { kind: 'resolver'; path: string; before: FileSnapshot }
  | { kind: 'trust-file'; path: string; before: FileSnapshot; updateCommand: string[]; removeCommand: string[] }
  /** Debian's store changed directly; `removeCommand` rebuilds it when something else changed those files meanwhile. */
  | { kind: 'debian-trust'; anchor: string; pem: string; files: TrustFileChange[]; hooksDir: string; removeCommand: string[] }
  | { kind: 'macos-dns'; service: string; servers: string[] }
  | { kind: 'macos-cert'; sha1: string; file: string; keychain: string };

/**
 * The restore journal: written (and synced to disk) BEFORE each change it describes,
 * so that `restore()` from any later process, after a crash or a reboot, can undo
 * whatever part of `apply` happened. Entries keep the FIRST original of each path.
 */
export interface Journal {
  btrflyHostConfig: 1;
  since: string;
  dnsServer?: string;
  /** The resolvers the host used before btrfly, for the DNS server to forward to. */
  upstreamNameservers: string[];
  entries: JournalEntry[];
}

export const JOURNAL_FILE = 'host-config.json';

export function journalPath(stateDir: string): string {
  return path.join(stateDir, JOURNAL_FILE);
}

/** Reads the journal, or `undefined` when nothing is applied. */
export async function readJournal(stateDir: string): Promise<Journal | undefined> {
  const file = journalPath(stateDir);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let parsed: Journal;
  try {
    parsed = JSON.parse(text) as Journal;
  } catch {
    throw new BtrflyError('CONFIG', `the host restore journal ${file} is not valid JSON: restore /etc/resolv.conf and the trust store by hand, then delete it`);
  }
  if (parsed.btrflyHostConfig !== 1 || !Array.isArray(parsed.entries)) {
    throw new BtrflyError('CONFIG', `the host restore journal ${file} has an unknown format: use the btrfly version that wrote it to run "btrfly stop"`);
  }
  return parsed;
}

/** Writes the journal atomically and durably: a crash leaves the old or the new one whole. */
export async function writeJournal(stateDir: string, journal: Journal): Promise<void> {
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writePrivateFile(journalPath(stateDir), JSON.stringify(journal, null, 2) + '\n');
  await syncDir(stateDir);
}

/** Removes the journal once everything it lists is restored. */
export async function removeJournal(stateDir: string): Promise<void> {
  await fs.rm(journalPath(stateDir), { force: true });
  await syncDir(stateDir);
}
