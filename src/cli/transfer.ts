import { Flags } from '@oclif/core';
import type { TagTransfer, TransferOptions } from '../format/remote-transfer';

/** Flags shared by `btrfly push` and `btrfly pull`. */
export const transferFlags = {
  force: Flags.boolean({ char: 'f', description: 'replace a tag that has new recordings on the other side', default: false }),
  progress: Flags.boolean({
    description: "show git's transfer progress (objects, bytes, rate); default: on when stderr is a terminal",
    allowNo: true,
  }),
};

/** Progress on a terminal (git's own: objects, bytes, rate), quiet otherwise or with --json. */
export function transferOptions(flags: { force: boolean; progress?: boolean; json: boolean }): TransferOptions {
  const show = flags.progress ?? (process.stderr.isTTY === true && !flags.json);
  return {
    force: flags.force,
    progress: show ? process.stderr : undefined,
    interactive: process.stdin.isTTY === true,
    onWarning: (line) => process.stderr.write(`btrfly: warning: ${line}\n`),
  };
}

/** One line per tag: what moved, from which recording to which. */
export function describeTransfer(t: TagTransfer, verb: 'pushed' | 'pulled'): string {
  const short = (c: string | null): string => (c ? c.slice(0, 12) : '');
  switch (t.status) {
    case 'new':
      return `${t.tag}: ${verb}, new tag at ${short(t.to)}`;
    case 'updated':
      return `${t.tag}: ${verb}, ${short(t.from)}..${short(t.to)}`;
    case 'forced':
      return `${t.tag}: ${verb}, replaced ${short(t.from)} with ${short(t.to)} (forced)`;
    case 'same':
      return `${t.tag}: up to date`;
    case 'restored':
      return `${t.tag}: ${verb}, its newest recording ${short(t.to)}, which was missing here, restored and checked`;
    case 'ahead':
      return `${t.tag}: this side has newer recordings (${short(t.to)}), left as it is`;
  }
}
