import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostConfigurator, onPath, type HostPaths } from '../../src/engine/host/config';
import { selfSignedCaPem } from '../helpers/test-ca';
import { describeWhen } from '../helpers/when';

// Debian's store changed directly, as update-ca-certificates would change it for one CA, and put
// back byte for byte, file types included: a store in miniature under a temp dir (a bundle, a
// certificate an administrator placed as a regular file, a link and its hash link, hooks), the
// real openssl for the subject hash.

const CA = selfSignedCaPem('btrfly debian CA', [{ name: 'basicConstraints', cA: true }]);
const OTHER = selfSignedCaPem('some root CA', [{ name: 'basicConstraints', cA: true }]);
const CORP = selfSignedCaPem('corp root CA', [{ name: 'basicConstraints', cA: true }]);

let dir: string;
let paths: HostPaths;
let certs: string;
let hookLog: string;

function subjectHash(pem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-subject_hash'], { input: pem, encoding: 'utf8' }).trim();
}

/** Every entry under `root`: type, mode, and bytes or link target. */
async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(root, { recursive: true })).sort()) {
    const p = path.join(root, name);
    const st = await fs.lstat(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[name] = `link -> ${await fs.readlink(p)}`;
    else if (st.isDirectory()) out[name] = `dir ${mode}`;
    else out[name] = `file ${mode} ${(await fs.readFile(p)).toString('base64')}`;
  }
  return out;
}

describeWhen(onPath('openssl') ? [] : ['openssl'])('Debian trust store, changed without update-ca-certificates', () => {
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btrfly-debian-'));
    certs = path.join(dir, 'etc-ssl-certs');
    hookLog = path.join(dir, 'hooks.log');
    for (const d of ['etc', 'anchors', 'mozilla', 'hooks', certs]) await fs.mkdir(path.resolve(dir, d));
    await fs.writeFile(path.join(dir, 'etc', 'resolv.conf'), 'nameserver 10.0.0.1\n');
    await fs.writeFile(path.join(dir, 'mozilla', 'Other.crt'), OTHER);
    await fs.symlink(path.join(dir, 'mozilla', 'Other.crt'), path.join(certs, 'Other.pem'));
    await fs.symlink('Other.pem', path.join(certs, `${subjectHash(OTHER)}.0`));
    // Placed by hand as a regular file: update-ca-certificates would turn it into a link.
    await fs.writeFile(path.join(certs, 'Corp.pem'), CORP, { mode: 0o640 });
    await fs.chmod(path.join(certs, 'Corp.pem'), 0o640);
    await fs.writeFile(path.join(certs, 'ca-certificates.crt'), OTHER + CORP, { mode: 0o644 });
    // run-parts runs only the first; the others have a dot in their name or no x bit.
    await fs.writeFile(path.join(dir, 'hooks', 'record'), `#!/bin/sh\ncat >> "${hookLog}"\n`, { mode: 0o755 });
    await fs.writeFile(path.join(dir, 'hooks', 'skipped.sh'), `#!/bin/sh\necho skipped >> "${hookLog}"\n`, { mode: 0o755 });
    await fs.writeFile(path.join(dir, 'hooks', 'notexec'), `#!/bin/sh\necho notexec >> "${hookLog}"\n`, { mode: 0o644 });
    const rebuild = path.join(dir, 'rebuild.sh');
    // Stands in for "update-ca-certificates --fresh": records that it ran.
    await fs.writeFile(rebuild, `#!/bin/sh\necho "rebuilt $*" >> "${hookLog}"\n`, { mode: 0o755 });
    paths = {
      resolvConf: path.join(dir, 'etc', 'resolv.conf'),
      stateDir: path.join(dir, 'state'),
      trust: 'debian',
      trustDir: path.join(dir, 'anchors'),
      trustUpdateCommand: [path.join(dir, 'no-such-update')],
      trustRemoveCommand: [rebuild, '--fresh'],
      debianCerts: { dir: certs, bundle: 'ca-certificates.crt', hooksDir: path.join(dir, 'hooks') },
    };
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('apply adds the CA as update-ca-certificates would; restore puts every file back, types and modes included', async () => {
    const before = await tree(dir);
    const host = new HostConfigurator(paths);

    await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'deb' });

    const anchor = path.join(paths.trustDir!, 'btrfly-deb.crt');
    const hashLink = path.join(certs, `${subjectHash(CA)}.0`);
    expect(await fs.readFile(anchor, 'utf8')).toBe(CA);
    expect(await fs.readlink(path.join(certs, 'btrfly-deb.pem'))).toBe(anchor);
    expect(await fs.readlink(hashLink)).toBe('btrfly-deb.pem');
    expect(await fs.readFile(path.join(certs, 'ca-certificates.crt'), 'utf8')).toBe(OTHER + CORP + CA);
    expect((await fs.lstat(path.join(certs, 'Corp.pem'))).isFile()).toBe(true);
    expect(execFileSync('openssl', ['verify', '-CApath', certs], { input: CA, encoding: 'utf8' })).toBe('stdin: OK\n');
    expect(await fs.readFile(hookLog, 'utf8')).toBe(`+${path.join(certs, 'btrfly-deb.pem')}\n`);

    const { restored } = await host.restore();

    expect(restored).toEqual([paths.resolvConf, anchor, path.join(certs, 'btrfly-deb.pem'), hashLink, path.join(certs, 'ca-certificates.crt')]);
    expect(await fs.readFile(hookLog, 'utf8')).toBe(`+${path.join(certs, 'btrfly-deb.pem')}\n-${path.join(certs, 'btrfly-deb.pem')}\n`);
    await fs.rm(hookLog);
    await fs.rm(paths.stateDir, { recursive: true });
    expect(await tree(dir)).toEqual(before);
  });

  test('a CA whose subject hash is taken gets the next link number', async () => {
    const twin = selfSignedCaPem('some root CA', [{ name: 'basicConstraints', cA: true }]);
    const host = new HostConfigurator(paths);

    await host.apply({ dnsServer: '127.0.0.2', caPem: twin, caName: 'deb' });

    expect(await fs.readlink(path.join(certs, `${subjectHash(OTHER)}.0`))).toBe('Other.pem');
    expect(await fs.readlink(path.join(certs, `${subjectHash(OTHER)}.1`))).toBe('btrfly-deb.pem');
    await host.restore();
    await expect(fs.lstat(path.join(certs, `${subjectHash(OTHER)}.1`))).rejects.toThrow();
  });

  test('applying twice (another CA) keeps the first originals', async () => {
    await fs.rm(hookLog, { force: true });
    const before = await tree(dir);
    const host = new HostConfigurator(paths);

    await host.apply({ dnsServer: '127.0.0.2', caPem: OTHER, caName: 'deb' });
    await host.apply({ dnsServer: '127.0.0.3', caPem: CA, caName: 'deb' });

    expect(await fs.readFile(path.join(certs, 'ca-certificates.crt'), 'utf8')).toBe(OTHER + CORP + CA);
    expect(await fs.readlink(path.join(certs, `${subjectHash(CA)}.0`))).toBe('btrfly-deb.pem');
    await expect(fs.lstat(path.join(certs, `${subjectHash(OTHER)}.1`))).rejects.toThrow();
    await host.restore();
    await fs.rm(hookLog);
    await fs.rm(paths.stateDir, { recursive: true });
    expect(await tree(dir)).toEqual(before);
  });

  test('a bundle rebuilt by another tool during the session is rebuilt again at restore, the rest put back', async () => {
    const host = new HostConfigurator(paths);
    await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'deb' });
    // A package install ran update-ca-certificates: the bundle changed, btrfly's CA still in it.
    await fs.writeFile(path.join(certs, 'ca-certificates.crt'), CORP + OTHER + CA);

    await host.restore();

    expect(await fs.readFile(hookLog, 'utf8')).toBe(`+${path.join(certs, 'btrfly-deb.pem')}\nrebuilt --fresh\n`);
    await expect(fs.lstat(path.join(paths.trustDir!, 'btrfly-deb.crt'))).rejects.toThrow();
    await expect(fs.lstat(path.join(certs, 'btrfly-deb.pem'))).rejects.toThrow();
    await expect(fs.lstat(path.join(certs, `${subjectHash(CA)}.0`))).rejects.toThrow();
    expect(await host.status()).toEqual({ applied: false });
  });
});
