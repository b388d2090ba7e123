/**
 * Errors that teach (issue 13): every way of calling btrfly wrongly, through the built
 * CLI, gets one line on stderr that names the flag, argument or command and says what to
 * do, the exit status of docs/contract.md "Exit statuses" (2: bad usage), and no stack trace. And a reader
 * that leaves early (`btrfly export T -o - | head -1`) ends btrfly quietly with status 0.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyFixtureArchive, runCli, spawnCli, tmpDir } from '../helpers';

const dir = tmpDir('btrfly-usage-');
const aFile = join(dir, 'a-file');
writeFileSync(aFile, 'not an archive\n');
const plainDir = join(dir, 'plain');
mkdirSync(join(plainDir, 'src'), { recursive: true });
// An archive whose git config a hand edit broke: still the archive, and said so.
const damagedConfig = join(dir, 'damaged-config');
execFileSync('git', ['init', '-q', '--bare', damagedConfig]);
appendFileSync(join(damagedConfig, 'config'), '[core\n\tgarbage\n');
const RUN_USAGE = 'usage: btrfly run --record|--playback --tag=T -- CMD [ARGS...]';

interface Row {
  argv: string[];
  code: number;
  /** The whole of stderr, less its newline: exact, or a pattern. */
  stderr: string | RegExp;
  /** What stdout holds (default: nothing). */
  stdout?: RegExp;
}

const rows: Row[] = [
  // A required flag, a choice of flags, flags that exclude each other.
  { argv: ['run', '--record', '--', 'true'], code: 2, stderr: `btrfly: missing --tag (tag to record, or T[@REV] to play back); ${RUN_USAGE}` },
  { argv: ['run', '--tag=t', '--', 'true'], code: 2, stderr: `btrfly: missing --record or --playback: say which; ${RUN_USAGE}` },
  { argv: ['run', '--record', '--playback', '--tag=t', '--', 'true'], code: 2, stderr: `btrfly: --record and --playback cannot be used together: keep one; ${RUN_USAGE}` },
  { argv: ['run', '--record', '--tag'], code: 2, stderr: `btrfly: flag --tag expects a value; ${RUN_USAGE}` },
  { argv: ['token', 'create', '--tags=a'], code: 2, stderr: /^btrfly: missing --scope \(.+\); usage: btrfly token create --scope=SCOPE --tags=TAGS$/ },
  // Arguments: missing, one too many, not among the choices.
  { argv: ['show'], code: 2, stderr: 'btrfly: missing SPEC (T or T@REV); usage: btrfly show SPEC' },
  { argv: ['diff', 'a'], code: 2, stderr: 'btrfly: missing TO (the newer recording, T or T@REV); usage: btrfly diff FROM TO' },
  { argv: ['push'], code: 2, stderr: /^btrfly: missing REMOTE \(.+\); usage: btrfly push REMOTE \[TAG\.\.\.\] \[FLAGS\]$/ },
  { argv: ['show', 'a', 'b'], code: 2, stderr: 'btrfly: unexpected argument "b"; usage: btrfly show SPEC' },
  { argv: ['tags', 'extra'], code: 2, stderr: 'btrfly: unexpected argument "extra"; usage: btrfly tags' },
  { argv: ['run', '--record', '--tag=t', '--allow-leaks', '--', 'true'], code: 2, stderr: 'btrfly: --allow-leaks accepts what an isolated run cannot carry: add --isolate, or leave --allow-leaks out' },
  { argv: ['start', 'recrod', '--tag=t'], code: 2, stderr: 'btrfly: MODE must be record or playback, not "recrod"; usage: btrfly start record|playback --tag=TAG' },
  // Bad flag values.
  { argv: ['export', 'x', '--format', 'zip', '-o', '-'], code: 2, stderr: 'btrfly: --format must be har or warc, not "zip"; usage: btrfly export SPEC --output=FILE' },
  { argv: ['serve', '--dns-port', 'x'], code: 2, stderr: 'btrfly: --dns-port: expected an integer but received: x; usage: btrfly serve' },
  { argv: ['serve', '--api-cert', 'cert.pem'], code: 2, stderr: 'btrfly: --api-cert needs --api-key as well: give both, or neither; usage: btrfly serve' },
  // Unknown flags: the command's own, mistyped, or the child's, before "--".
  { argv: ['run', '--record', '--tag=t', 'ls', '-la'], code: 2, stderr: 'btrfly: unknown flag -la: put the command after "--": btrfly run --record --tag=t -- ls -la' },
  {
    argv: ['run', '--playback', '--tag', 't', 'curl', '-o', 'a b', 'http://x.test/'],
    code: 2,
    stderr: `btrfly: unknown flag -o: put the command after "--": btrfly run --playback --tag t -- curl -o 'a b' http://x.test/`,
  },
  { argv: ['run', '--recrod', '--tag=t', '--', 'true'], code: 2, stderr: 'btrfly: unknown flag --recrod: did you mean "--record"? (run "btrfly run --help" for its flags)' },
  { argv: ['tags', '--bogus'], code: 2, stderr: 'btrfly: unknown flag --bogus: run "btrfly tags --help" for its flags' },
  // Unknown commands: the nearest, or where the list is.
  {
    argv: ['recrod'],
    code: 2,
    stderr: 'btrfly: "recrod" is not a btrfly command; did you mean "btrfly run --record" or "btrfly start record"? (run "btrfly --help" for the list)',
  },
  { argv: ['shwo', 'example'], code: 2, stderr: 'btrfly: "shwo" is not a btrfly command; did you mean "btrfly show"? (run "btrfly --help" for the list)' },
  { argv: ['ca', 'pth'], code: 2, stderr: 'btrfly: "ca pth" is not a btrfly command; did you mean "btrfly ca path"? (run "btrfly --help" for the list)' },
  { argv: ['ca', 'foo'], code: 2, stderr: 'btrfly: "ca foo" is not a btrfly command; "ca" has: btrfly ca export, btrfly ca path' },
  { argv: ['xyzzy'], code: 2, stderr: 'btrfly: "xyzzy" is not a btrfly command (run "btrfly --help" for the list)' },
  { argv: ['--archive', 'x', 'tags'], code: 2, stderr: 'btrfly: put the command first, then its flags: btrfly tags --archive x' },
  { argv: ['recrod', '--help'], code: 2, stderr: /^btrfly: "recrod" is not a btrfly command; did you mean "btrfly run --record" or / },
  { argv: ['tags', 'extra', '--help'], code: 2, stderr: 'btrfly: unexpected argument "extra"; usage: btrfly tags' },
  // --archive that is a file, or a directory that is not an archive.
  {
    argv: ['tags', '--archive', aFile],
    code: 2,
    stderr: `btrfly: --archive ${aFile} is a file, not an archive directory: give the archive's directory (default .btrfly), or move the file away`,
  },
  { argv: ['run', '--record', '--tag=t', '--archive', aFile, '--', 'true'], code: 2, stderr: /^btrfly: --archive .*a-file is a file, not an archive directory: / },
  {
    argv: ['show', 'x', '--archive', plainDir],
    code: 1,
    stderr: `btrfly: ${plainDir} is not a btrfly archive (a bare git repository): pass --archive with the right directory`,
  },
  {
    argv: ['tags', '--archive', damagedConfig],
    code: 1,
    stderr: new RegExp(`^btrfly: the archive ${damagedConfig} has a damaged git config \\(git: bad config line \\d+ in file ${damagedConfig}/config\\): fix that line or restore the file$`),
  },
  // --json: the same error, as JSON on stdout.
  { argv: ['show', '--json'], code: 2, stderr: 'btrfly: missing SPEC (T or T@REV); usage: btrfly show SPEC', stdout: /"code": "USAGE",\n\s+"message": "missing SPEC/ },
];

describe('usage errors: one line that teaches, exit 2', () => {
  test.concurrent.each(rows)('btrfly $argv', async ({ argv, code, stderr, stdout }) => {
    const r = await runCli(argv);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code, stderr: expect.stringMatching(/\n$/) });
    const line = r.stderr.slice(0, -1);
    if (typeof stderr === 'string') expect(line).toBe(stderr);
    else expect(line).toMatch(stderr);
    expect(line).not.toMatch(/\n|^\s+at |›/m);
    if (stdout) expect(r.stdout).toMatch(stdout);
    else expect(r.stdout).toBe('');
  });

  test('run --help shows where the command goes', async () => {
    const r = await runCli(['run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('$ btrfly run --record|--playback --tag=T -- CMD [ARGS...]\n');
  });
});

describe('bad upstream flags: one line naming the flag, exit 2, and no archive made', () => {
  const badPem = join(dir, 'bad.pem');
  writeFileSync(badPem, '-----BEGIN CERTIFICATE-----\nAAAAgarbage\n-----END CERTIFICATE-----\n');
  test.concurrent.each([
    { flag: ['--upstream-proxy', 'notaurl'], stderr: 'btrfly: --upstream-proxy "notaurl" is not an http:// or https:// URL: write it like http://proxy.example:3128' },
    { flag: ['--upstream-proxy', 'socks5://u:pw@127.0.0.1:1080'], stderr: 'btrfly: --upstream-proxy "socks5://…@127.0.0.1:1080" is not an http:// or https:// URL: write it like http://proxy.example:3128' },
    { flag: ['--upstream-dns', '999.1.1.1'], stderr: 'btrfly: --upstream-dns "999.1.1.1" is not IP or IP:PORT: write it like 10.0.0.2 or 10.0.0.2:5353' },
    { flag: ['--upstream-ca', aFile], stderr: `btrfly: --upstream-ca ${aFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----): pass the CA's certificate in PEM` },
    { flag: ['--upstream-ca', badPem], stderr: new RegExp(`^btrfly: --upstream-ca ${badPem} holds a certificate that cannot be read \\(.+\\): pass the CA's certificate in PEM$`) },
    { flag: ['--resolve', 'foo'], stderr: 'btrfly: --resolve "foo" is not HOST:ADDR: write it like registry.example:10.0.0.5' },
  ])('btrfly run --record $flag', async ({ flag, stderr }) => {
    const archive = join(tmpDir(), 'archive');
    const r = await runCli(['run', '--record', '--tag=t', '--archive', archive, ...flag, '--', 'true']);
    expect(r.code).toBe(2);
    if (typeof stderr === 'string') expect(r.stderr).toBe(`${stderr}\n`);
    else expect(r.stderr.slice(0, -1)).toMatch(stderr);
    expect(existsSync(archive)).toBe(false);
  });
});

describe('-o FILE that cannot be written: one line naming FILE, not the temp file beside it', () => {
  test.concurrent.each([['export', 'example/small', '--format', 'har'], ['sbom', 'example/packages']])('btrfly %s', async (...argv) => {
    const archive = copyFixtureArchive();
    const out = join(dir, 'no-such-dir', 'out.json');
    const r = await runCli([...argv, '-o', out, '--archive', archive]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: `btrfly: cannot write ${out}: the directory ${join(dir, 'no-such-dir')} does not exist: create it, or give a path in an existing directory\n` });
  });
});

describe('a reader that leaves early: btrfly ends quietly, status 0', () => {
  let archive: string;

  beforeAll(async () => {
    archive = copyFixtureArchive();
    // A recording whose listing (~300 KB) is well past a pipe's 64 KiB buffer.
    const entries = Array.from({ length: 100 }, (_, i) => ({
      startedDateTime: '2024-01-01T00:00:00.000Z',
      time: 1,
      request: { method: 'GET', url: `http://origin.test/${'p'.repeat(3000)}/${i}`, httpVersion: 'HTTP/1.1', headers: [], queryString: [], cookies: [], headersSize: -1, bodySize: 0 },
      response: {
        status: 200,
        statusText: 'OK',
        httpVersion: 'HTTP/1.1',
        headers: [],
        cookies: [],
        content: { size: 2, mimeType: 'text/plain', text: 'x\n' },
        redirectURL: '',
        headersSize: -1,
        bodySize: 2,
      },
      cache: {},
      timings: { send: 0, wait: 1, receive: 0 },
    }));
    const har = join(dir, 'long.har');
    writeFileSync(har, JSON.stringify({ log: { version: '1.2', creator: { name: 'test', version: '1' }, entries } }));
    const r = await runCli(['import', har, '--tag=long', '--archive', archive]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  /** Runs btrfly with stdout on a pipe that the reader closes after the first line. */
  async function closedAfterFirstLine(argv: string[]) {
    const proc = spawnCli(argv);
    let received = 0;
    proc.child.stdout!.on('data', (chunk: string) => {
      received += chunk.length;
      if (chunk.includes('\n')) proc.child.stdout!.destroy();
    });
    const r = await proc.exited;
    return { ...r, received };
  }

  test.each([
    { argv: ['show', 'long'], total: 300_000 },
    { argv: ['export', 'example/large', '-o', '-'], total: 28_000_000 },
  ])('btrfly $argv | head -1', async ({ argv, total }) => {
    const r = await closedAfterFirstLine([...argv, '--archive', archive]);
    expect(r.received).toBeLessThan(total);
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
  });
});

describe('bad input in a file or in the environment: one line, nothing half done', () => {
  test('a HAR whose third body is marked base64 but is not: import names the entry and writes no tag', async () => {
    const archive = copyFixtureArchive();
    const body = (text: string, encoding?: string) => ({ size: 5, mimeType: 'text/plain', text, ...(encoding && { encoding }) });
    const entries = ['aGVsbG8=', 'aGVsbG8=', '!!not base64@@', 'aGVsbG8='].map((text, i) => ({
      startedDateTime: '2024-01-01T00:00:00.000Z',
      time: 1,
      request: { method: 'GET', url: `http://origin.test/b64/${i}`, httpVersion: 'HTTP/1.1', headers: [], queryString: [], cookies: [], headersSize: -1, bodySize: 0 },
      response: { status: 200, statusText: 'OK', httpVersion: 'HTTP/1.1', headers: [], cookies: [], content: body(text, 'base64'), redirectURL: '', headersSize: -1, bodySize: 5 },
      cache: {},
      timings: { send: 0, wait: 1, receive: 0 },
    }));
    const har = join(dir, 'bad-base64.har');
    writeFileSync(har, JSON.stringify({ log: { version: '1.2', creator: { name: 'test', version: '1' }, entries } }));
    const r = await runCli(['import', har, '--tag=b64', '--archive', archive]);
    expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({
      code: 1,
      stderr: `btrfly: bad-base64.har is not a HAR 1.2 file: entry 2 has a response body marked base64 that is not base64: export it again as HAR with content and retry\n`,
      stdout: '',
    });
    expect((await runCli(['tags', '--archive', archive])).stdout).not.toMatch(/^b64 /m);
  });

  test('BTRFLY_LOG_LEVEL that is not a level: serve says which ones are, exit 2', async () => {
    const r = await runCli(['serve', '--archive', copyFixtureArchive()], { env: { BTRFLY_LOG_LEVEL: 'loud' } });
    expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({
      code: 2,
      stderr: 'btrfly: BTRFLY_LOG_LEVEL=loud is not a log level: use one of trace, debug, info, warn, error, fatal, silent\n',
      stdout: '',
    });
  });
  test('BTRFLY_REDACT_KEY that is not hex, or a redact.key left empty: one line, nothing recorded (an empty key hashes a query in the clear)', async () => {
    const archive = join(tmpDir(), 'archive');
    const argv = ['run', '--record', '--tag=t', '--redact-query=token', '--archive', archive, '--', 'true'];
    const env = await runCli(argv, { env: { BTRFLY_REDACT_KEY: 'my-ci-secret' } });
    expect({ code: env.code, stderr: env.stderr }).toEqual({
      code: 2,
      stderr: 'btrfly: BTRFLY_REDACT_KEY is not a key: give at least 16 bytes in hex (32 hex digits), e.g. the output of "openssl rand -hex 32"\n',
    });
    const config = tmpDir();
    writeFileSync(join(config, 'redact.key'), '', { mode: 0o600 });
    const file = await runCli(argv, { env: { BTRFLY_CONFIG_DIR: config } });
    expect(file.code).toBe(1);
    expect(file.stderr).toBe(`btrfly: ${join(config, 'redact.key')} is not a key (not 32 or more hex digits): restore it, or delete it to make a new one (recordings that redacted a query under the old key then miss those requests)\n`);
    expect((await runCli(['tags', '--archive', archive])).stdout).not.toMatch(/^t /m);
  });
});
