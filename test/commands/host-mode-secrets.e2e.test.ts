/**
 * Host mode's daemon outlives `btrfly start` and runs as root for as long as the session: an
 * `--upstream-proxy` URL's password must not be on its command line (`ps`, /proc/PID/cmdline,
 * readable by every user of the host), nor in the state directory's files or the archive.
 * In a private mount and network namespace, as host-mode.e2e.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { CLI_IN_SCRIPT as cli, hostModeMissing, inNamespace, namespaceHost, tmpDir } from '../helpers';
import { testWhen } from '../helpers/when';

const maybe = testWhen(hostModeMissing());
const PASSWORD = 'PROXYPW-host-9e1f';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    return st?.isDirectory() ? filesUnder(p) : st?.isFile() ? [p] : [];
  });
}

maybe('start record --upstream-proxy: the password is not on the daemon\'s command line, nor in the state directory or the archive', async () => {
  const work = tmpDir('btrfly-host-secret-');
  const { prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  const archive = path.join(work, 'archive');
  const script = [
    ...prelude,
    `${cli} start record --tag=proxied --archive ${archive} --upstream-proxy http://u:${PASSWORD}@127.0.0.9:3128`,
    `pid=$("${process.execPath}" -p "require('${work}/state/daemon.json').pid")`,
    `tr '\\0' ' ' < /proc/$pid/cmdline > ${work}/cmdline`,
    // The daemon still goes through the proxy (nothing listens there: refused), not straight to the origin (its name resolves nowhere here).
    `curl -s -o /dev/null -D ${work}/headers http://origin.test/x`,
    `${cli} stop record --discard`,
  ];
  const ns = inNamespace(script);
  expect(ns.stdout + ns.stderr).toMatch(/recording tag "proxied"/);
  expect(ns.status).toBe(0);
  const cmdline = readFileSync(path.join(work, 'cmdline'), 'utf8');
  expect(cmdline).toMatch(/daemon-entry\.js /);
  expect(cmdline).not.toContain(PASSWORD);
  expect(readFileSync(path.join(work, 'headers'), 'utf8')).toMatch(/^x-btrfly-upstream-error: connection refused\r$/im);
  expect(filesUnder(path.join(work, 'state')).filter((f) => readFileSync(f).includes(PASSWORD))).toEqual([]);
  const objects = execFileSync('git', ['--git-dir', archive, 'cat-file', '--batch-all-objects', '--batch'], { maxBuffer: 1 << 26 });
  expect(objects.includes(PASSWORD)).toBe(false);
  expect(filesUnder(archive).filter((f) => readFileSync(f).includes(PASSWORD))).toEqual([]);
}, 120_000);
