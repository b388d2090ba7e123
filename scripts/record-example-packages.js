#!/usr/bin/env node
'use strict';
/**
 * Adds the tag `example/packages` to an example archive (issue 15): one build that installs
 * with real package managers from the test fixture origins: pip from a Python index
 * (pypi.test), npm from a registry (registry.test), apt from a signed repository (deb.test)
 * and go from a module proxy (goproxy.test). The recording carries package artifacts and
 * metadata of four ecosystems, so every later btrfly's `diff`, `sbom` and playback are
 * checked against it (test/example-archive.e2e.test.ts).
 *
 * Needs root (apt's repository and the Go proxy are on ports 80 and 443 of 127.0.0.77, as
 * the tools expect them), a built btrfly, python3 with pip, npm, apt-get, go, openssl, gpg.
 * Then tidy: `scripts/make-example-archive.sh --tidy-only DIR` is NOT used, since its `git gc`
 * would rewrite the committed pack; this script packs only the new objects into a pack of
 * their own.
 *
 * Usage: node scripts/record-example-packages.js [ARCHIVE]   (default <project>/.btrfly)
 */
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const ARCHIVE = path.resolve(process.argv[2] ?? path.join(ROOT, '.btrfly'));
const ADDR = '127.0.0.77';
const TAG = 'example/packages';
const NAMES = ['deb.test', 'goproxy.test', 'files.test', 'cdn.test', 'pypi.test', 'registry.test'];
const PYPI_PORT = 48444;
const NPM_PORT = 48445;
const { makeAptRepo } = require(path.join(ROOT, 'test/fixtures/apt-repo'));
const { makeGoProxy } = require(path.join(ROOT, 'test/fixtures/goproxy'));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'btrfly-example-packages-'));
const children = [];
const sh = (cmd, opts = {}) => execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: work, stdio: ['ignore', 'pipe', 'inherit'], ...opts }).toString();
const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Starts a fixture server and waits for its JSON ready line. */
function start(script, args) {
  const child = spawn(process.execPath, [path.join(ROOT, 'test/fixtures', script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('"ready":true')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

async function main() {
  if (!fs.existsSync(path.join(ROOT, 'dist/commands/run.js'))) throw new Error('build btrfly first: npm run build');
  // A throwaway CA for the origins, as a real origin has its own; btrfly trusts it upstream.
  const san = NAMES.map((n) => `DNS:${n}`).join(',');
  sh(`openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj '/CN=btrfly example package origins CA' \
      -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj '/CN=deb.test' 2>/dev/null
    printf 'subjectAltName=${san}\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -out leaf.pem -extfile leaf.ext 2>/dev/null`);
  const root = path.join(work, 'root');
  const { keyPath } = makeAptRepo(path.join(root, 'deb'), [
    { name: 'btrfly-hello', version: '1.0', text: 'hello from deb.test\n' },
    { name: 'btrfly-tools', version: '2.0' },
  ], path.join(work, 'apt-work'));
  makeGoProxy(path.join(root, 'goproxy'), 'example.test/greet', ['v1.0.0', 'v1.1.0']);
  const tls = ['--cert', path.join(work, 'leaf.pem'), '--key', path.join(work, 'leaf.key')];
  await start('build-origins.js', ['--host', ADDR, '--root', root, ...tls]);
  await start('origin-server.js', ['--host', ADDR, '--port', String(PYPI_PORT), '--kind', 'pypi', ...tls]);
  await start('origin-server.js', ['--host', ADDR, '--port', String(NPM_PORT), '--kind', 'npm', ...tls]);

  const out = path.join(work, 'out');
  const npm = fs.realpathSync(sh('command -v npm').trim());
  const python = sh(`python3 -c 'import sys, pip; print(sys.executable)'`).trim();
  fs.mkdirSync(path.join(out, 'npm'), { recursive: true });
  fs.writeFileSync(path.join(out, 'npm', 'package.json'), JSON.stringify({ name: 'example', version: '1.0.0', private: true, dependencies: { 'btrfly-demo-top': '1.0.0' } }));
  fs.writeFileSync(path.join(out, 'npmrc'), '');
  fs.writeFileSync(path.join(out, 'requirements.txt'), 'btrfly-demo-app==1.0.0\nbtrfly-demo-util==1.1.0\n');
  fs.writeFileSync(path.join(work, 'build.sh'), [
    'set -euo pipefail',
    `PIP_CONFIG_FILE=/dev/null ${q(python)} -m pip --no-cache-dir --disable-pip-version-check --no-input install --no-compile --target ${q(path.join(out, 'site'))} --index-url https://pypi.test:${PYPI_PORT}/simple -r ${q(path.join(out, 'requirements.txt'))}`,
    `cd ${q(path.join(out, 'npm'))} && ${q(process.execPath)} ${q(npm)} install --registry https://registry.test:${NPM_PORT}/ --cache ${q(path.join(out, 'npm-cache'))} --userconfig ${q(path.join(out, 'npmrc'))} --no-audit --no-fund --no-update-notifier --loglevel=warn`,
    `GREET_VERSION=v1.1.0 STEPS='apt go' bash ${q(path.join(ROOT, 'test/fixtures/build-tools.sh'))} ${q(path.join(out, 'tools'))} ${q(keyPath)}`,
    '',
  ].join('\n'));
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
    GIT_AUTHOR_NAME: 'btrfly example', GIT_AUTHOR_EMAIL: 'example@btrfly.invalid', GIT_COMMITTER_NAME: 'btrfly example', GIT_COMMITTER_EMAIL: 'example@btrfly.invalid' };
  const resolve = NAMES.flatMap((n) => ['--resolve', `${n}:${ADDR}`]);
  execFileSync(process.execPath, [path.join(ROOT, 'bin/run.js'), 'run', '--record', `--tag=${TAG}`, '--archive', ARCHIVE, '--upstream-ca', path.join(work, 'ca.pem'), ...resolve, '--', 'bash', path.join(work, 'build.sh')], { env, stdio: 'inherit' });

  // The new objects into one pack of their own; the committed pack stays as it is.
  const git = (...args) => execFileSync('git', ['--git-dir', ARCHIVE, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();
  git('-c', 'repack.writeBitmaps=false', 'repack', '-d', '-q');
  git('prune-packed');
  git('fsck', '--strict', '--no-dangling', '--no-progress');
  execFileSync(process.execPath, [path.join(ROOT, 'bin/run.js'), 'verify', '--archive', ARCHIVE], { stdio: 'inherit' });
  // What a fresh clone would not carry (see make-example-archive.sh): local state, logs, hooks.
  for (const p of ['hooks', 'logs', 'btrfly', 'description', 'FETCH_HEAD', 'ORIG_HEAD', 'info/refs', 'info/exclude', 'objects/info/packs', 'objects/info/commit-graph']) {
    fs.rmSync(path.join(ARCHIVE, p), { recursive: true, force: true });
  }
  sh(`find ${q(ARCHIVE)} -type d -empty -delete`);
}

main()
  .catch((e) => {
    process.stderr.write(`record-example-packages: ${e.message}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill();
    fs.rmSync(work, { recursive: true, force: true });
  });
