import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BtrflyError } from '../../../errors';
import { runChecked } from './command-runner';
import { captureFile, replaceWithFile } from './file-snapshot';
import type { JournalEntry } from './journal';
import type { HostPaths } from './types';

/** Checks the CA name and PEM early, so a bad argument fails before anything changes. */
export function parseCa(caPem: string, caName: string): X509Certificate {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(caName)) {
    throw new BtrflyError('USAGE', `CA name "${caName}" may hold only letters, digits, ".", "_" and "-": pick another name`);
  }
  try {
    return new X509Certificate(caPem);
  } catch (e) {
    throw new BtrflyError('CONFIG', `btrfly's CA certificate is not a valid PEM certificate (${(e as Error).message}): run "btrfly ca path" and check the file`);
  }
}

/** The file the CA is installed as, in a Linux trust directory. */
export function trustFilePath(paths: HostPaths, caName: string): string {
  if (!paths.trustDir) {
    throw new BtrflyError('CONFIG', 'no supported system trust store was found on this host: set BTRFLY_TRUST_DIR (and BTRFLY_TRUST_UPDATE) or use "btrfly run" (command mode)');
  }
  return path.join(paths.trustDir, `btrfly-${caName}.crt`);
}

/** The journal entry for the CA file: what the path held before. */
export async function planTrustFile(paths: HostPaths, caName: string): Promise<Extract<JournalEntry, { kind: 'trust-file' }>> {
  const file = trustFilePath(paths, caName);
  const updateCommand = paths.trustUpdateCommand ?? [];
  return { kind: 'trust-file', path: file, before: await captureFile(file), updateCommand, removeCommand: paths.trustRemoveCommand ?? updateCommand };
}

/** Writes the CA where the distribution's tool looks. Needs the journal entry written first. */
export async function writeTrustFile(file: string, caPem: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  await replaceWithFile(file, caPem.endsWith('\n') ? caPem : caPem + '\n', 0o644);
}

/** Rebuilds the system bundle (`update-ca-certificates`, `update-ca-trust extract`, or the configured command). */
export async function updateTrust(run: Parameters<typeof runChecked>[0], command: string[]): Promise<void> {
  if (command.length > 0) await runChecked(run, command);
}
