/**
 * Keeps the resident memory of a long body stream flat. Each chunk that passes through the
 * proxy leaves short-lived garbage behind whose bytes live outside the V8 heap (socket reads,
 * TLS records, zstd output), and V8 collects it late. Measured on a 2 GiB body over loopback
 * (docs/decisions.md, "Memory of long streams"): playback peak RSS 182 MiB with V8's defaults,
 * 154 MiB with the young generation held at its initial size, 129 MiB with a minor collection
 * after every 16 MiB streamed as well. The glibc half of the fix is in bin/run.js.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

/** Bytes streamed between two young-generation collections. */
const COLLECT_EVERY = 16 * 1024 * 1024;

type Collect = (opts: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let collect: Collect | undefined;
let streamed = 0;

/** Sets the flags once per process; the proxy calls it when it starts. */
export function keepMemoryFlat(): void {
  if (collect) return;
  // The semi-space maximum is fixed when the isolate starts, but its growth factor is read at
  // every resize: with 1 the young generation stays at its initial size under a high allocation rate.
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  v8.setFlagsFromString('--expose-gc');
  collect = vm.runInNewContext('gc') as Collect;
}

/** Counts bytes a stream has passed on and collects the young generation every {@link COLLECT_EVERY} bytes. */
export function noteStreamed(bytes: number): void {
  if (!collect) return;
  streamed += bytes;
  if (streamed < COLLECT_EVERY) return;
  streamed = 0;
  collect({ type: 'minor' });
}

/** A stream that has passed this many bytes is long: see {@link enterLongStream}. */
export const LONG_STREAM = 64 * 1024 * 1024;

let longStreams = 0;

/**
 * While a long body records, old-generation marking starts only once the old generation is 90 %
 * of the way to its limit (97 %: at once), not, as V8 does by default, as soon as less room is
 * left than the young generation's capacity, which in btrfly's small heap is always: a 1 GiB
 * record ran a full mark-compact every ~100 ms (37–79 per GiB, 1.0–2.5 s of V8 helper-thread CPU
 * on 2 cores); with the triggers, 3–5 (docs/decisions.md, "Record of a large body").
 * Only while a long stream runs: on the small-file record they let the heap grow, peak RSS
 * 202–213 → 226–240 MiB. V8 reads both flags at every allocation-limit check.
 * @returns a function that ends this stream's hold (idempotent)
 */
export function enterLongStream(): () => void {
  if (!collect) return () => {};
  if (longStreams++ === 0) setMarkingTriggers(90, 97);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    if (--longStreams === 0) setMarkingTriggers(0, 0);
  };
}

function setMarkingTriggers(soft: number, hard: number): void {
  v8.setFlagsFromString(`--incremental-marking-soft-trigger=${soft}`);
  v8.setFlagsFromString(`--incremental-marking-hard-trigger=${hard}`);
}
