#!/usr/bin/env node
// btrfly's entry point: oclif loads the compiled commands from dist/commands.
'use strict';

// btrfly needs Node >= 22.15 (zstd in zlib, tls.getCACertificates, process.execve). The installed
// command (bin/btrfly) brings one; run directly on an older Node, say so in one line rather than
// fail later with a stack. Written so that any Node can parse it.
var found = process.versions.node.split('.').map(Number);
if (found[0] < 22 || (found[0] === 22 && found[1] < 15)) {
  process.stderr.write('btrfly: needs Node >= 22.15 and found ' + process.version + ' (' + process.execPath + '): install Node 22.15 or later, or install btrfly with npm on Linux x64/arm64, where it brings its own\n');
  process.exit(1);
}

// The commands that stream bodies (run, the daemon, pull, which reads back what it fetched) start again once, in place (same pid),
// with glibc's mmap threshold fixed at 4 MiB: without it glibc raises the threshold after
// the first large buffer is freed and keeps ever larger freed buffers in its heap. It was
// 128 KiB (a 2 GiB record: peak RSS 181 → 156 MiB), but then every 1 MiB stream buffer was
// an mmap of its own, faulted in and zeroed: 4 MiB keeps the peak under 250 MiB and made
// playback 1.4× faster (docs/decisions.md, "Memory of long streams"). glibc reads the setting once at start-up, so the variable is
// removed again before anything else runs and never reaches a child.
const STREAMING = new Set(['run', 'daemon', 'pull', 'serve']);
const MARK = 'BTRFLY_MALLOC_TUNED';
if (process.env[MARK]) {
  if (process.env[MARK] === 'added') delete process.env.MALLOC_MMAP_THRESHOLD_;
  delete process.env[MARK];
} else if (process.platform === 'linux' && typeof process.execve === 'function' && STREAMING.has(process.argv[2]) && !process.env.MALLOC_MMAP_THRESHOLD_) {
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    ...process.env,
    MALLOC_MMAP_THRESHOLD_: '4194304',
    [MARK]: 'added',
  });
}

// A uid with no passwd entry (a container run with --user 1234, some CI runners) makes two
// look-ups throw during oclif's load: the login shell when SHELL is unset (oclif asks the passwd
// database) and the home directory when HOME is unset (clean-stack, which oclif loads, asks
// os.homedir). Each is lent a value here, named in BTRFLY_LENT_ENV, and taken back by every
// command's init (BtrflyCommand, src/cli/base.ts) before it runs: no command btrfly starts sees
// a variable its user did not set.
var lent = [];
if (process.env.SHELL === undefined) {
  process.env.SHELL = 'sh';
  lent.push('SHELL');
}
if (process.env.HOME === undefined) {
  try {
    require('node:os').homedir();
  } catch (_noPasswdEntry) {
    process.env.HOME = '/';
    lent.push('HOME');
  }
}
if (lent.length) process.env.BTRFLY_LENT_ENV = lent.join(',');

// No user plugins: btrfly has none, and oclif would read (and run the code of) a package.json in
// its data directory (~/.local/share/btrfly), warning with an EACCES on every command where that
// is not readable (HOME another user's: a container run with --user and HOME=/root).
require('@oclif/core').execute({ dir: __dirname, loadOptions: { root: __dirname, userPlugins: false } }).catch(require('@oclif/core/handle'));
