/**
 * `btrfly export`: one recording streamed into a HAR or WARC file, written atomically
 * (atomic-file.ts): a failed export never leaves a truncated file under the name asked for.
 */
import { basename } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import { writeFileAtomically } from './atomic-file';
import { loadRecording, recordingSize } from './archive-report';
import { toHar, type ExportSource } from './har';
import { entryKey } from './manifest';
import type { Entry, Recording } from './types';
import { toWarc } from './warc';

export type ExportFormat = 'har' | 'warc';

export interface ExportResult {
  label: string;
  entries: number;
  /** Bytes of the bodies exported. */
  size: number;
  format: ExportFormat;
  file: string;
}

/**
 * Writes the recording `spec` (`T` or `T@REV`) to `file` (or to `stdout` when `file` is `-`).
 * @throws BtrflyError TAG_NOT_FOUND and the like; BODY_MISSING/BODY_CORRUPT from the bodies
 */
export async function exportRecording(
  archive: Archive,
  spec: string,
  format: ExportFormat,
  file: string,
  opts: { creatorVersion?: string; stdout?: Writable } = {},
): Promise<ExportResult> {
  const { rec, label, date } = await loadRecording(archive, spec);
  const src: ExportSource = {
    entries: rec.manifest.entries,
    volatile: rec.volatile,
    recordedAt: date,
    title: label,
    creatorVersion: opts.creatorVersion,
    rules: rec.manifest.rules,
    redact: rec.manifest.redact,
  };
  const openBody = (e: Entry) => archive.openBody(bodyOf(rec, e));
  const stream = format === 'har' ? toHar(src, openBody) : toWarc(src, openBody, file === '-' ? 'btrfly.warc' : basename(file));
  const result = { label, entries: rec.manifest.entries.length, size: recordingSize(rec), format, file };
  if (file === '-') {
    await pipeline(stream, opts.stdout ?? process.stdout, { end: false });
    return result;
  }
  await writeFileAtomically(file, stream);
  return result;
}

function bodyOf(rec: Recording, e: Entry) {
  const loc = rec.bodies.get(e.response.content.sha256);
  if (!loc) {
    throw new BtrflyError('BODY_MISSING', `body ${e.response.content.sha256} of ${entryKey(e)} is missing from ${rec.tag}@${rec.commit.slice(0, 7)}: run "btrfly verify ${rec.tag}"`);
  }
  return loc;
}
