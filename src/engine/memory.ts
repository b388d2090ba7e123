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
  // Start old-generation marking only once the old generation is 90 % of the way to its limit
  // (97 %: at once), not as soon as less room is left than the young generation's capacity, which
  // in a small heap is always: a 1 GiB record ran a full mark-compact every ~100 ms (37–79 per
  // GiB, ~1.2–1.6 s of V8 helper-thread CPU); with these, 3–5 (docs/decisions.md, "Record: GC").
  // Both are read at every allocation-limit check, so setting them at run time works.
  v8.setFlagsFromString('--incremental-marking-soft-trigger=90');
  v8.setFlagsFromString('--incremental-marking-hard-trigger=97');
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
