/**
 * The journal of a recording in progress, `<archive>/btrfly/pending/<id>.jsonl`: one JSON
 * line per completed entry, fsync'd, so a crash keeps what was completed for the next
 * `stop record` to seal or discard (docs/contract.md, "Atomic tags").
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Entry, MatchRule, Redactions, StoredBody, VolatileHeader } from './types';

export interface JournalBegin {
  type: 'begin';
  tag: string;
  session: string;
  append: boolean;
  started: string;
  pid: number;
}
export interface JournalEntry {
  type: 'entry';
  entry: Entry;
  volatile: VolatileHeader[];
  body: StoredBody;
}
/** The recorded command failed, or (with --isolate) tried what btrfly cannot carry: the recording was kept aside instead of becoming the tag. */
export interface JournalAside {
  type: 'aside';
  /** The command's own exit status (0 when only leaks held the recording back). */
  exitCode: number;
  /** How many connections btrfly could not carry (run --isolate); absent when none. */
  leaks?: number;
}
export type JournalLine = JournalBegin | JournalEntry | JournalAside | { type: 'rules'; rules: MatchRule[] } | { type: 'redact'; redact: Redactions };

/** What a journal holds, as read back. */
export interface JournalContent {
  begin: JournalBegin;
  entries: JournalEntry[];
  rules?: MatchRule[];
  redact?: Redactions;
  aside?: JournalAside;
}

/**
 * An open journal; lines are appended in call order, each one on disk before its promise resolves.
 * Lines that arrive while a write and its `datasync` are under way go out together in the next
 * one (a group commit): one sync per exchange set the small-file record's pace
 * (docs/notes/small-files.md).
 */
export class JournalWriter {
  private queue: Promise<void> = Promise.resolve();
  /** The lines waiting for the write under way to finish; they share one write and one sync. */
  private batch?: { lines: string[]; written: Promise<void> };

  private constructor(private readonly fh: FileHandle) {}

  /** Creates the journal (it must not exist) with its `begin` line. */
  static async create(path: string, begin: JournalBegin): Promise<JournalWriter> {
    const fh = await open(path, 'wx');
    const w = new JournalWriter(fh);
    await w.append(begin);
    return w;
  }

  append(line: JournalLine): Promise<void> {
    const text = JSON.stringify(line) + '\n';
    if (!this.batch) {
      const batch: { lines: string[]; written: Promise<void> } = { lines: [], written: Promise.resolve() };
      batch.written = this.queue.then(async () => {
        // From here on, new lines start the next batch.
        if (this.batch === batch) this.batch = undefined;
        await this.fh.appendFile(batch.lines.join(''));
        await this.fh.datasync();
      });
      // One failed write must not wedge later ones; each caller sees its own batch's failure.
      this.queue = batch.written.catch(() => undefined);
      this.batch = batch;
    }
    this.batch.lines.push(text);
    return this.batch.written;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.fh.close();
  }
}

/**
 * Reads a journal back. A torn last line (the writer died mid-write) is ignored: it was
 * never acknowledged to the caller.
 */
export async function readJournal(path: string): Promise<JournalContent> {
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  let begin: JournalBegin | undefined;
  const out: Omit<JournalContent, 'begin'> = { entries: [] };
  for await (const text of lines) {
    if (!text.trim()) continue;
    let line: JournalLine;
    try {
      line = JSON.parse(text) as JournalLine;
    } catch {
      continue;
    }
    if (line.type === 'begin') begin = line;
    else if (line.type === 'entry') out.entries.push(line);
    else if (line.type === 'rules') out.rules = line.rules;
    else if (line.type === 'redact') out.redact = line.redact;
    else if (line.type === 'aside') out.aside = line;
  }
  if (!begin) throw new Error(`journal ${path} has no begin line`);
  return { begin, ...out };
}
