/**
 * A build tool's own proxy setting, which the tool prefers to HTTPS_PROXY, must not take the
 * build around btrfly: pip with a `proxy` in the user's pip.conf fetched nothing through btrfly
 * (a recording of nothing, and the network in playback). Real pip against a package origin on
 * loopback, through a pip.conf naming a proxy nobody answers on.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipTool, registerCleanup, runCli, startOrigin, tmpDir } from '../helpers';
import { testWhen } from '../helpers/when';

describe("a build tool's own proxy setting under btrfly run", () => {
  testWhen(pipTool.missing())("pip with a proxy in the user's pip.conf records through btrfly and plays back with the origin gone", async () => {
    const origin = await startOrigin({ https: true, kind: pipTool.kind, names: [pipTool.host] });
    registerCleanup(() => origin.close());
    const dir = tmpDir('btrfly-pip-conf-');
    pipTool.writeProject(dir);
    const conf = join(dir, 'pip.conf');
    writeFileSync(conf, '[global]\nproxy = http://127.0.0.1:9\ntimeout = 5\nretries = 0\n');
    const env = { PIP_CONFIG_FILE: conf, PIP_PROXY: undefined };
    const base = origin.urlFor('/', pipTool.host).replace(/\/$/, '');
    const build = ['bash', '-c', pipTool.command(dir, base)];
    const archive = join(dir, '.btrfly');
    const rec = await runCli(['run', '--record', '--tag=p', '--archive', archive, '--resolve', `${pipTool.host}:${origin.host}`, '--upstream-ca', origin.caPath!, '--', ...build], { env, cwd: dir });
    expect(rec.stderr).toMatch(/recorded tag "p" .*: [1-9]\d* requests/);
    expect(rec.code).toBe(0);
    const wheels = readdirSync(join(dir, 'out', 'wheels')).sort();
    expect(wheels.length).toBeGreaterThan(0);
    await origin.close();
    const play = await runCli(['run', '--playback', '--tag=p', '--archive', archive, '--', ...build], { env, cwd: dir });
    expect(play.stderr).toContain(' 0 misses');
    expect(play.code).toBe(0);
    expect(readdirSync(join(dir, 'out', 'wheels')).sort()).toEqual(wheels);
  }, 90_000);
});
