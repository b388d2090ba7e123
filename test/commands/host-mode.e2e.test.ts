/**
 * Host mode as the seed shows it, inside a private mount and network namespace so the
 * machine's own files are never touched: /etc/resolv.conf and the Debian trust store are
 * bind-mounted from temp copies. `btrfly start record`, a build with plain curl (no proxy
 * settings: DNS sends it to btrfly, the system trust store makes it trust btrfly's CA),
 * `btrfly stop record`, the origin gone, `btrfly start playback`, the same build,
 * `btrfly stop playback`; then every copied file is byte-identical to before.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { backgroundServer, CLI_IN_SCRIPT as cli, genBodySha256, hostModeMissing, inNamespace, namespaceHost, originServerLines, regularPemIn, snapshot, testCa, tmpDir } from '../helpers';
import { testWhen } from '../helpers/when';

const missing = hostModeMissing();
const maybe = testWhen(missing);

/** A namespace host whose resolver names 192.0.2.53, its files as they were, and an archive path in its work directory. */
async function hostWithArchive(prefix: string): Promise<{ work: string; copies: string; prelude: string[]; before: Record<string, string>; archive: string }> {
  const work = tmpDir(prefix);
  const { copies, prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  return { work, copies, prelude, before: await snapshot(copies), archive: path.join(work, 'archive') };
}

/** `btrfly start record` of `tag` in `archive`, recording from the namespace's origin.test. */
const startRecord = (tag: string, archive: string): string =>
  `${cli} start record --tag=${tag} --archive ${archive} --resolve origin.test:127.0.0.5 --upstream-ca ${testCa().caPath}`;

/** Script lines that seal a first recording of `tag` (one body), note its commit in `work`/tag-before, and start recording it again. */
const sealedThenRecording = (tag: string, archive: string, work: string): string[] => [
  startRecord(tag, archive),
  'curl -sSf -o /dev/null "https://origin.test/gen/1000?seed=1"',
  `${cli} stop record`,
  `git --git-dir=${archive} rev-parse refs/heads/${tag} > ${work}/tag-before`,
  startRecord(tag, archive),
];

maybe('start record, build, stop record; start playback with the origin gone, build, stop playback; host files restored', async () => {
  const work = tmpDir('btrfly-host-');
  const { copies, prelude } = await namespaceHost(work, '# the host before btrfly\nnameserver 192.0.2.53\noptions timeout:1\n');
  // A certificate placed by hand as a regular file must come back as one, not as a link.
  const regular = await regularPemIn(copies);
  const before = await snapshot(copies);
  const size = 9 * 1024 * 1024 + 3; // two parts
  const archive = path.join(work, 'archive');
  const script = [
    ...prelude,
    ...originServerLines(work),
    startRecord('host1', archive),
    `grep -q '^nameserver 127.77.0.1' /etc/resolv.conf`,
    // The daemon's control API answers a body that is not JSON as the service's API does.
    `curl -s -o ${work}/not-json.out -w 'control status %{http_code}\\n' --unix-socket ${work}/state/daemon.sock -H 'content-type: application/json' -d '{not json' http://btrfly/sessions`,
    // A body past the limit and a route it does not have are answered as JSON errors too.
    `head -c 70000 /dev/zero | tr '\\0' ' ' > ${work}/big.json`,
    `curl -s -o ${work}/too-big.out -w 'control status %{http_code}\\n' --unix-socket ${work}/state/daemon.sock -H 'content-type: application/json' --data-binary @${work}/big.json http://btrfly/sessions`,
    `curl -s -o ${work}/no-route.out -w 'control status %{http_code}\\n' --unix-socket ${work}/state/daemon.sock http://btrfly/nosuch`,
    `curl -sSf -o ${work}/rec.bin "https://origin.test/gen/${size}?seed=11"`,
    `curl -sSf -o ${work}/rec.txt "https://origin.test/counter"`,
    `${cli} stop record`,
    'kill $ORIGIN; wait $ORIGIN || true',
    `${cli} start playback --tag=host1 --archive ${archive}`,
    `curl -sSf -o ${work}/play.bin "https://origin.test/gen/${size}?seed=11"`,
    `curl -sSf -o ${work}/play.txt "https://origin.test/counter"`,
    `code=$(curl -s -o /dev/null -w '%{http_code}' "https://origin.test/not-recorded")`,
    'echo "miss status $code"',
    `${cli} stop playback && echo "stop playback exit 0" || echo "stop playback exit $?"`,
    `${cli} status`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(out).toMatch(/recording tag "host1"/);
  expect(out).toMatch(/recorded tag "host1" \(recording [0-9a-f]{12}\): 2 requests, 2 entries/);
  expect(out).toMatch(/miss status 404/);
  expect(out).toMatch(/played back tag "host1" .*: 3 requests, .* 2 hits, 1 misses/);
  expect(out).toMatch(/GET https:\/\/origin\.test\/not-recorded/);
  expect(out).toMatch(/stop playback exit 3/);
  expect(out).toMatch(/no active session/);
  expect(out).toMatch(/control status 400\n/);
  expect(JSON.parse(await fs.readFile(path.join(work, 'not-json.out'), 'utf8'))).toMatchObject({ error: { code: 'USAGE', message: expect.stringMatching(/^the request body is not JSON \([^\n]+$/) } });
  expect(out).toMatch(/control status 413\n/);
  expect(JSON.parse(await fs.readFile(path.join(work, 'too-big.out'), 'utf8'))).toMatchObject({ error: { code: 'USAGE', message: 'the request body is larger than 64 KiB: send a smaller JSON object' } });
  expect(out).toMatch(/control status 404\n/);
  expect(JSON.parse(await fs.readFile(path.join(work, 'no-route.out'), 'utf8'))).toMatchObject({ error: { code: 'NOT_FOUND', message: "the daemon's control API has no GET /nosuch" } });
  expect(ns.status).toBe(0);
  const sha = (f: string) => fs.readFile(f).then((b) => createHash('sha256').update(b).digest('hex'));
  expect(await sha(path.join(work, 'play.bin'))).toBe(await genBodySha256(size, 11));
  expect(await sha(path.join(work, 'rec.bin'))).toBe(await genBodySha256(size, 11));
  expect(await fs.readFile(path.join(work, 'play.txt'), 'utf8')).toBe(await fs.readFile(path.join(work, 'rec.txt'), 'utf8'));
  expect(await snapshot(copies)).toEqual(before);
  expect(before[path.join('certs', regular)]).toMatch(/^file 644 /);
}, 240_000);

maybe('kill -9 of the daemon mid-recording: tag unchanged, archive valid, stop restores the host and says what became of the recording', async () => {
  const { work, copies, prelude, before, archive } = await hostWithArchive('btrfly-host-kill-');
  const script = [
    ...prelude,
    ...originServerLines(work),
    // A first, sealed recording: the tag the crash must leave alone.
    ...sealedThenRecording('crash', archive, work),
    'curl -sSf -o /dev/null "https://origin.test/gen/2000?seed=2"',
    'curl -sSf -o /dev/null "https://origin.test/gen/3000?seed=3"',
    // Half way through a slow body, the daemon dies.
    'curl -s -o /dev/null "https://origin.test/drip/100000?chunks=50&intervalMs=100" &',
    'sleep 1',
    `kill -9 $("${process.execPath}" -p "require('${work}/state/daemon.json').pid")`,
    'sleep 0.5',
    `${cli} status`,
    `git --git-dir=${archive} rev-parse refs/heads/crash > ${work}/tag-after`,
    `git --git-dir=${archive} fsck --strict && echo "fsck ok"`,
    `${cli} stop record; echo "stop exit $?"`,
    `grep -q '192.0.2.53' /etc/resolv.conf && echo "resolver restored"`,
    `${cli} stop record --seal-partial --archive ${archive}; echo "seal exit $?"`,
    `${cli} log crash --archive ${archive} || true`,
    `git --git-dir=${archive} show refs/heads/crash:manifest.json | grep -c '"url"' | sed 's/^/urls /'`,
    `git --git-dir=${archive} fsck --strict && echo "fsck ok after seal"`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(out).toMatch(/daemon stopped during the record session of tag "crash"/);
  expect(out).toMatch(/fsck ok\n/);
  expect(out).toMatch(/recording of tag "crash" was interrupted .* 2 completed entries are kept/);
  expect(out).toMatch(/stop exit 0/);
  expect(out).toMatch(/resolver restored/);
  expect(out).toMatch(/sealed the 2 completed entries/);
  expect(out).toMatch(/urls 2/);
  expect(out).toMatch(/fsck ok after seal/);
  expect(await fs.readFile(path.join(work, 'tag-after'), 'utf8')).toBe(await fs.readFile(path.join(work, 'tag-before'), 'utf8'));
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);

maybe('a start refused (unknown tag) stops the daemon it started and leaves the host as it was', async () => {
  const work = tmpDir('btrfly-host-refused-');
  const { copies, prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  const before = await snapshot(copies);
  const script = [
    ...prelude,
    `${cli} start playback --tag=nosuch --archive ${work}/archive && echo "start exit 0" || echo "start exit $?"`,
    `test -e ${work}/state/daemon.json && echo "daemon state left" || echo "no daemon state"`,
    `${cli} status`,
    // Another archive may start now: no daemon of the first one is in the way.
    `${cli} start record --tag=other --archive ${work}/other && echo "second start exit 0" || echo "second start exit $?"`,
    `${cli} stop record && echo "stop exit 0" || echo "stop exit $?"`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(out).toMatch(/tag "nosuch" not found/);
  expect(out).toMatch(/start exit 1\n/);
  expect(out).toMatch(/no daemon state\n/);
  expect(out).toMatch(/second start exit 0\n/);
  expect(out).toMatch(/stop exit 0\n/);
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);

maybe('a daemon without a session: status shows it, another archive is refused, stop stops it', async () => {
  const work = tmpDir('btrfly-host-idle-');
  const { copies, prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  const before = await snapshot(copies);
  const pid = `"${process.execPath}" -p "require('${work}/state/daemon.json').pid"`;
  const script = [
    ...prelude,
    // A daemon that never got a session (as after a start killed half way), run by hand.
    ...backgroundServer('DAEMON', `${cli} daemon --archive ${work}/first`, `${work}/daemon.out`),
    `for i in $(seq 200); do [ -s ${work}/state/daemon.json ] && break; sleep 0.1; done`,
    `echo "daemon pid $(${pid})"`,
    `${cli} status`,
    `${cli} start record --tag=other --archive ${work}/other && echo "start exit 0" || echo "start exit $?"`,
    `${cli} stop record && echo "stop exit 0" || echo "stop exit $?"`,
    `kill -0 $DAEMON 2>/dev/null && echo "daemon alive" || echo "daemon gone"`,
    `test -e ${work}/state/daemon.json && echo "daemon state left" || echo "no daemon state"`,
    `${cli} status`,
    `${cli} stop record && echo "second stop exit 0" || echo "second stop exit $?"`,
    `${cli} start record --tag=other --archive ${work}/other && echo "later start exit 0" || echo "later start exit $?"`,
    `${cli} stop record`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  const daemonPid = /daemon pid (\d+)/.exec(out)?.[1];
  expect(daemonPid).toMatch(/^\d+$/);
  expect(out).toContain(`the btrfly daemon ${daemonPid} on 127.77.0.1 runs without a session (archive ${work}/first): run "btrfly stop record" to stop it\n`);
  expect(out).toContain(`btrfly: the btrfly daemon (pid ${daemonPid}) already runs with archive ${work}/first: run "btrfly status" to see its sessions and "btrfly stop" to end them, or use that archive\n`);
  expect(out).toMatch(/start exit 1\n/);
  expect(out).toContain(`btrfly: stopped the btrfly daemon ${daemonPid} (archive ${work}/first), which held no session\n`);
  expect(out).toMatch(/\nstop exit 0\n/);
  expect(out).toMatch(/daemon gone\n/);
  expect(out).toMatch(/no daemon state\n/);
  expect(out).toMatch(/\nno active session\n/);
  expect(out).toMatch(/no host-mode record session is active: nothing to stop/);
  expect(out).toMatch(/second stop exit 1\n/);
  expect(out).toMatch(/later start exit 0\n/);
  expect(ns.status).toBe(0);
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);

maybe('start record names a recording of the tag that a kill -9 left aside, as run --record does', async () => {
  const work = tmpDir('btrfly-host-aside-');
  const { prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  const archive = path.join(work, 'archive');
  const script = [
    ...prelude,
    // The recorder dies (kill -9 from its own command) without sealing: its recording is left aside.
    `${cli} run --record --tag=app --archive ${archive} -- sh -c 'echo "killed $PPID"; kill -9 $PPID; sleep 5' || true`,
    `${cli} start record --tag=app --archive ${archive}`,
    `${cli} stop record`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  const pid = /killed (\d+)/.exec(out)?.[1];
  expect(pid).toMatch(/^\d+$/);
  expect(out).toMatch(
    new RegExp(`^btrfly: note: recording (\\S+) of tag "app" \\(0 entries, started [^)]+\\) is not the tag: it was interrupted \\(process ${pid} stopped without sealing it\\); "btrfly pending seal \\1" makes it the tag, "btrfly pending drop \\1" drops it\nbtrfly: recording tag "app" for this host`, 'm'),
  );
  expect(ns.status).toBe(0);
}, 240_000);

// One big body of each kind: the 2 GiB one through the proxy and the archive is run-hermetic's
// (command mode); the daemon shares that path, so 512 MiB (past where peak RSS levels off,
// ~140 MiB from 512 MiB to 3 GiB in storage-large) shows its memory is flat too.
maybe('the daemon records and plays back a 512 MiB body with peak RSS under 250 MiB', async () => {
  const work = tmpDir('btrfly-host-big-');
  const { prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  const size = 512 * 1024 ** 2;
  const archive = path.join(work, 'archive');
  // VmHWM only grows, so a sample right after each download is the daemon's peak up to then.
  const hwm = (label: string) => `grep VmHWM /proc/$("${process.execPath}" -p "require('${work}/state/daemon.json').pid")/status | sed 's/^/${label} /'`;
  const script = [
    ...prelude,
    ...originServerLines(work),
    startRecord('big', archive),
    `curl -sSf "https://origin.test/gen/${size}?seed=5" | sha256sum | sed 's/^/record sha /'`,
    hwm('record'),
    `${cli} stop record`,
    'kill $ORIGIN; wait $ORIGIN || true',
    `${cli} start playback --tag=big --archive ${archive}`,
    `curl -sSf "https://origin.test/gen/${size}?seed=5" | sha256sum | sed 's/^/playback sha /'`,
    hwm('playback'),
    `${cli} stop playback`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(ns.status).toBe(0);
  const expected = await genBodySha256(size, 5);
  expect(out).toContain(`record sha ${expected}`);
  expect(out).toContain(`playback sha ${expected}`);
  for (const mode of ['record', 'playback']) {
    const kib = Number(new RegExp(`${mode} VmHWM:\\s+(\\d+) kB`).exec(out)?.[1]);
    process.stderr.write(`host mode ${mode}: peak RSS of the daemon ${(kib / 1024).toFixed(1)} MiB\n`);
    expect(kib).toBeLessThan(250 * 1024);
  }
}, 240_000);

maybe('a start killed after its session opened (before it said so): stop record ends that session, stops the daemon and restores the host', async () => {
  const work = tmpDir('btrfly-host-start-killed-');
  const { copies, prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  // A trust-store hook (as Java's keystore hook is) that holds start in its trust-store step
  // until the daemon has opened the session: start is then killed at that moment, every time.
  const hook = path.join(copies, 'hooks', 'hold');
  await fs.writeFile(
    hook,
    [
      '#!/bin/sh',
      'cat > /dev/null',
      `[ -e ${work}/killed ] && exit 0`,
      `until curl -s --unix-socket ${work}/state/daemon.sock http://btrfly/status 2>/dev/null | grep -q '"mode":"record"'; do sleep 0.1; done`,
      `touch ${work}/session-open`,
      'exec sleep 600',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const before = await snapshot(copies);
  const archive = path.join(work, 'archive');
  const script = [
    ...prelude,
    `setsid ${cli} start record --tag=k --archive ${archive} > ${work}/start.out 2>&1 &`,
    'START=$!',
    `for i in $(seq 300); do [ -e ${work}/session-open ] && break; sleep 0.1; done`,
    `[ -e ${work}/session-open ] || { echo "the session did not open"; cat ${work}/start.out; exit 1; }`,
    `touch ${work}/killed`,
    'kill -9 -- -$START; wait $START || true',
    `${cli} stop record && echo "stop exit 0" || echo "stop exit $?"`,
    `test -e ${work}/state/daemon.json && echo "daemon state left" || echo "no daemon state"`,
    `${cli} status`,
    `${cli} start record --tag=k --archive ${archive} && echo "start again exit 0" || echo "start again exit $?"`,
    `${cli} stop record --discard && echo "second stop exit 0" || echo "second stop exit $?"`,
    `git --git-dir=${archive} fsck --strict && echo "fsck ok"`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(out).toMatch(/btrfly: recorded tag "k" \(recording [0-9a-f]{12}\): 0 requests, 0 entries/);
  expect(out).toMatch(/^stop exit 0\n/m);
  expect(out).toMatch(/no daemon state\n/);
  expect(out).toMatch(/^no active session\n/m);
  expect(out).toMatch(/start again exit 0\n/);
  expect(out).toMatch(/second stop exit 0\n/);
  expect(out).toMatch(/fsck ok\n/);
  expect(ns.status).toBe(0);
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);

maybe('SIGTERM to the daemon mid-build (a reboot, a kill): the tag does not move, stop record keeps what was completed for --seal-partial', async () => {
  const { work, copies, prelude, before, archive } = await hostWithArchive('btrfly-host-term-');
  const pid = `"${process.execPath}" -p "require('${work}/state/daemon.json').pid"`;
  const script = [
    ...prelude,
    ...originServerLines(work),
    ...sealedThenRecording('term', archive, work),
    'curl -sSf -o /dev/null "https://origin.test/gen/2000?seed=2"',
    // The build goes on; the machine shuts down: init sends the daemon SIGTERM.
    `DAEMON=$(${pid}); kill -TERM $DAEMON`,
    'while kill -0 $DAEMON 2>/dev/null; do sleep 0.1; done',
    `git --git-dir=${archive} rev-parse refs/heads/term > ${work}/tag-after`,
    `${cli} stop record; echo "stop exit $?"`,
    `${cli} stop record --seal-partial --archive ${archive}; echo "seal exit $?"`,
    `git --git-dir=${archive} show refs/heads/term:manifest.json | grep -c '"url"' | sed 's/^/urls /'`,
    `git --git-dir=${archive} fsck --strict && echo "fsck ok"`,
    `${cli} verify --archive ${archive} && echo "verify ok"`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(await fs.readFile(path.join(work, 'tag-after'), 'utf8')).toBe(await fs.readFile(path.join(work, 'tag-before'), 'utf8'));
  expect(out).toMatch(/recording of tag "term" was interrupted .* 1 completed entries are kept/);
  expect(out).toMatch(/stop exit 0\n/);
  expect(out).toMatch(/sealed the 1 completed entries/);
  expect(out).toMatch(/seal exit 0\n/);
  expect(out).toMatch(/urls 1\n/);
  expect(out).toMatch(/fsck ok\n/);
  expect(out).toMatch(/verify ok\n/);
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);

maybe('a resolver btrfly cannot write (read-only): start fails in one line and the trust store it had changed is put back', async () => {
  const work = tmpDir('btrfly-host-ro-');
  const { copies, prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  const before = await snapshot(copies);
  const script = [
    ...prelude,
    'mount -o remount,bind,ro /etc/resolv.conf',
    `${cli} start record --tag=ro --archive ${work}/archive && echo "start exit 0" || echo "start exit $?"`,
    `test -e ${work}/state/host-config.json && echo "journal left" || echo "no journal"`,
    `test -e ${work}/state/daemon.json && echo "daemon state left" || echo "no daemon state"`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(ns.stderr).toMatch(/^btrfly: [^\n]*\/etc\/resolv\.conf[^\n]*EROFS[^\n]*\n$/);
  expect(ns.stderr).not.toMatch(/restoring/);
  expect(out).toMatch(/start exit 1\n/);
  expect(out).toMatch(/no journal\n/);
  expect(out).toMatch(/no daemon state\n/);
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);

maybe('a resolver made read-only during the session: stop still takes btrfly\'s CA out of the trust store, and a second stop finishes', async () => {
  const work = tmpDir('btrfly-host-ro-stop-');
  const { copies, prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\n');
  const before = await snapshot(copies);
  const script = [
    ...prelude,
    `${cli} start record --tag=ro --archive ${work}/archive`,
    'mount -o remount,bind,ro /etc/resolv.conf',
    `${cli} stop record && echo "stop exit 0" || echo "stop exit $?"`,
    'ls /usr/local/share/ca-certificates /etc/ssl/certs | grep -c btrfly | sed "s/^/btrfly files /"',
    'mount -o remount,bind,rw /etc/resolv.conf',
    `${cli} stop record && echo "second stop exit 0" || echo "second stop exit $?"`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(out).toMatch(/stop exit 1\n/);
  expect(out).toMatch(/btrfly files 0\n/);
  expect(out).toMatch(/second stop exit 0\n/);
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);

maybe('the daemon killed during a playback that missed: stop playback says its result is lost and does not exit 0', async () => {
  const { work, copies, prelude, before, archive } = await hostWithArchive('btrfly-host-play-kill-');
  const script = [
    ...prelude,
    ...originServerLines(work),
    startRecord('p', archive),
    'curl -sSf -o /dev/null "https://origin.test/gen/100?seed=1"',
    `${cli} stop record`,
    `${cli} start playback --tag=p --archive ${archive}`,
    'curl -s -o /dev/null -w "miss status %{http_code}\\n" "https://origin.test/not-recorded"',
    `kill -9 $("${process.execPath}" -p "require('${work}/state/daemon.json').pid")`,
    `${cli} stop playback && echo "stop exit 0" || echo "stop exit $?"`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(out).toMatch(/miss status 404\n/);
  expect(out).toMatch(/btrfly: the btrfly daemon stopped during the playback of tag "p", and its hits and misses with it: this playback proves nothing; run the build again under "btrfly start playback --tag=p"\n/);
  expect(out).toMatch(/stop exit 1\n/);
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);

maybe('two starts at once: one records, the other is refused, and the host is switched while the session lasts and restored after', async () => {
  const { work, copies, prelude, before, archive } = await hostWithArchive('btrfly-host-two-starts-');
  const script = [
    ...prelude,
    `${cli} start record --tag=a --archive ${archive} > ${work}/a.out 2>&1 & A=$!`,
    `${cli} start record --tag=b --archive ${archive} > ${work}/b.out 2>&1 & B=$!`,
    'wait $A && echo "a exit 0" || echo "a exit $?"',
    'wait $B && echo "b exit 0" || echo "b exit $?"',
    `cat ${work}/a.out ${work}/b.out`,
    'grep -q "^nameserver 127.77.0.1" /etc/resolv.conf && echo "resolver switched"',
    'test -e /usr/local/share/ca-certificates/btrfly-ca.crt && echo "CA trusted"',
    `${cli} stop record && echo "stop exit 0" || echo "stop exit $?"`,
    `test -e ${work}/state/daemon.json && echo "daemon state left" || echo "no daemon state"`,
  ];
  const ns = inNamespace(script);
  const out = ns.stdout + ns.stderr;
  expect(out.match(/^[ab] exit 0$/gm)).toHaveLength(1);
  expect(out.match(/^[ab] exit 1$/gm)).toHaveLength(1);
  expect(out).toMatch(/^btrfly: a host-mode record session of tag "[ab]" is active since [^\n]+: run "btrfly stop record" first$/m);
  expect(out).toMatch(/resolver switched\n/);
  expect(out).toMatch(/CA trusted\n/);
  expect(out).toMatch(/stop exit 0\n/);
  expect(out).toMatch(/no daemon state\n/);
  expect(await snapshot(copies)).toEqual(before);
}, 240_000);
