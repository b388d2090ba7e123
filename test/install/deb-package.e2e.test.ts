/**
 * The .deb of `npm run package`, installed with dpkg into an isolated root: an overlay of / with
 * a tmpfs upper layer, in a mount namespace of its own, entered with chroot. Nothing reaches the
 * host's own /usr, /etc or dpkg database, and the whole layer goes away with the namespace.
 * Through the installed /usr/bin/btrfly (its own Node 24, a bare environment): --version, a
 * record and a playback of curl against an origin on loopback, systemd-analyze verify of the
 * unit, then dpkg -r leaves no file of the package, no config, no state and no user behind.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { describeWhen } from '../helpers/when';

const ROOT = resolve(__dirname, '..', '..');
const isRoot = process.getuid?.() === 0;
const describeRoot = describeWhen(isRoot ? undefined : 'root (mount namespace, overlay, chroot)');

describeRoot('the .deb from npm run package', () => {
  let work: string;
  let origin: ChildProcess;
  let port: number;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'btrfly-deb-test-'));
    origin = spawn(process.execPath, [join(ROOT, 'test/fixtures/origin-server.js'), '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((ok) => createInterface({ input: origin.stdout! }).once('line', ok));
    port = JSON.parse(line).port;
    // dist/ is built by npm test's pretest; pack without prepack's second build.
    execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  }, 120_000);
  afterAll(() => {
    origin?.kill();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('installs, records and plays back as /usr/bin/btrfly, verifies its unit, and dpkg -r leaves nothing', () => {
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
    const started = Date.now();
    const deb = execFileSync('bash', [join(ROOT, 'scripts/package-deb.sh')], {
      cwd: ROOT,
      env: { ...process.env, BTRFLY_TGZ: join(work, `btrfly-${version}.tgz`), BTRFLY_DEB_OUT: work, BTRFLY_DEB_COMPRESS: 'zstd' },
      encoding: 'utf8',
    }).trim();
    const built = Date.now();
    const script = join(work, 'in-root.sh');
    writeFileSync(script, `set -eu
r=${work}/root
mkdir -p "$r" && mount -t tmpfs tmpfs "$r" && mkdir "$r/upper" "$r/work" "$r/m"
mount -t overlay overlay -o lowerdir=/,upperdir="$r/upper",workdir="$r/work" "$r/m"
mount --bind /proc "$r/m/proc" && mount --bind /dev "$r/m/dev"
cp "${deb}" "$r/m/tmp/btrfly.deb"
# dpkg as sudo runs it; btrfly from the barest environment, with only /usr/bin/node (20) on PATH
inroot() { chroot "$r/m" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
bare() { chroot "$r/m" env -i PATH=/usr/bin:/bin "$@"; }
t0=$(date +%s%N); inroot dpkg -i /tmp/btrfly.deb >/dev/null; echo "dpkg-i-ms $(( ($(date +%s%N) - t0) / 1000000 ))"
echo "version $(bare btrfly --version)"
echo "user $(inroot getent passwd btrfly | cut -d: -f1,6,7)"
inroot systemd-analyze verify /lib/systemd/system/btrfly.service && echo "unit verified"
# The service as the unit runs it for many build hosts (an address of the host's network, the
# API on every address), under the unit's RestrictAddressFamilies, in a network namespace of its
# own whose one interface has a documentation address: it must come up.
cp "${join(ROOT, 'test/fixtures/restrict-address-families.py')}" "$r/m/tmp/raf.py"
fams=$(sed -n 's/^RestrictAddressFamilies=//p' "$r/m/lib/systemd/system/btrfly.service")
unshare --net sh -c 'ip link set lo up && ip link add v0 type veth peer name v1 && ip addr add 192.0.2.10/24 dev v0 && ip link set v1 up && ip link set v0 up && exec chroot "$0" env -i PATH=/usr/bin:/bin HOME=/root BTRFLY_CONFIG_DIR=/tmp/serve-config python3 /tmp/raf.py "$1" btrfly serve --address 192.0.2.10 --api-address 0.0.0.0 --archive /tmp/serve-archive --upstream-dns 192.0.2.53' "$r/m" "$fams" > "$r/serve.out" 2>&1 &
S=$!
for i in $(seq 600); do grep -q '^btrfly: ' "$r/serve.out" && break; kill -0 $S 2>/dev/null || break; sleep 0.1; done
echo "serve $(grep -m1 '^btrfly: ' "$r/serve.out" || echo "no line")"
kill $S 2>/dev/null || true; wait $S || true
url=http://origin.test:${port}/gen/300000?seed=7
bare btrfly run --record --tag=t --archive /tmp/a --resolve origin.test:127.0.0.1 -- curl -sSf -o /tmp/rec.bin "$url"
bare btrfly run --playback --tag=t --archive /tmp/a -- curl -sSf -o /tmp/play.bin "$url"
echo "bodies $(inroot sha256sum /tmp/rec.bin /tmp/play.bin | cut -c1-64 | uniq | wc -l) $(inroot stat -c %s /tmp/play.bin)"
inroot dpkg -r btrfly >/dev/null 2>&1
echo "left $(cd "$r/m" && ls -d usr/lib/btrfly usr/bin/btrfly lib/systemd/system/btrfly.service etc/btrfly var/lib/btrfly 2>/dev/null | wc -l)"
echo "user-after $(inroot getent passwd btrfly || echo none)"
`);
    const out = execFileSync('unshare', ['--mount', '--propagation', 'private', 'bash', script], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'inherit'] });
    const field = (k: string) => out.split('\n').find((l) => l.startsWith(k + ' '))?.slice(k.length + 1);
    console.log(`deb ${Math.round(built - started)} ms to build (zstd); dpkg -i ${field('dpkg-i-ms')} ms`);
    expect(field('version')).toMatch(new RegExp(`^btrfly/${version.replace(/\./g, '\\.')} linux-\\w+ node-v24\\.`));
    expect(field('user')).toBe('btrfly:/var/lib/btrfly:/usr/sbin/nologin');
    expect(out).toContain('unit verified');
    expect(field('serve')).toMatch(/^btrfly: serving DNS on 192\.0\.2\.10:53, /);
    expect(field('bodies')).toBe('1 300000');
    expect(field('left')).toBe('0');
    expect(field('user-after')).toBe('none');
  }, 240_000);
});
