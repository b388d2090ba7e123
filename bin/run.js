#!/usr/bin/env node
// btrfly's entry point: oclif loads the compiled commands from dist/commands.
'use strict';

// The commands that stream bodies (run, the daemon, pull, which reads back what it fetched) start again once, in place (same pid),
// with glibc's mmap threshold fixed at 128 KiB: without it glibc raises the threshold after
// the first large buffer is freed and keeps the freed MiB-sized stream buffers in its heap.
// Measured on a 2 GiB record: peak RSS 181 MiB before, 156 MiB after (docs/decisions.md,
// "Memory of long streams"). glibc reads the setting once at start-up, so the variable is
// removed again before anything else runs and never reaches a child.
const STREAMING = new Set(['run', 'daemon', 'pull', 'serve']);
const MARK = 'BTRFLY_MALLOC_TUNED';
if (process.env[MARK]) {
  if (process.env[MARK] === 'added') delete process.env.MALLOC_MMAP_THRESHOLD_;
  delete process.env[MARK];
} else if (process.platform === 'linux' && typeof process.execve === 'function' && STREAMING.has(process.argv[2]) && !process.env.MALLOC_MMAP_THRESHOLD_) {
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    ...process.env,
    MALLOC_MMAP_THRESHOLD_: '131072',
    [MARK]: 'added',
  });
}

require('@oclif/core').execute({ dir: __dirname }).catch(require('@oclif/core/handle'));
