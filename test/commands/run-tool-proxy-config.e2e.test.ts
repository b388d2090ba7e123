/**
 * A build tool's own proxy setting, which the tool prefers to HTTPS_PROXY, must not take the
 * build around btrfly: pip with a `proxy` in the user's pip.conf fetched nothing through btrfly
 * (a recording of nothing, and the network in playback); npm took the user's upper-case
 * NPM_CONFIG_HTTPS_PROXY over btrfly's npm_config_https_proxy, and a `noproxy` in their .npmrc
 * sent those hosts around btrfly. Real pip and npm against package origins on loopback, with
 * settings naming a proxy nobody answers on.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WITHOUT_NPM_SETTINGS, npmTool, pipTool, registerCleanup, runCli, startOrigin, tmpDir } from '../helpers';
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

  testWhen(npmTool.missing())("npm with the user's NPM_CONFIG_HTTPS_PROXY and a noproxy in their .npmrc records through btrfly and plays back", async () => {
    const origin = await startOrigin({ https: true, kind: npmTool.kind, names: [npmTool.host] });
    registerCleanup(() => origin.close());
    const dir = tmpDir('btrfly-npm-proxy-');
    npmTool.writeProject(dir);
    writeFileSync(join(dir, 'npmrc'), `proxy=http://127.0.0.1:9\nhttps-proxy=http://127.0.0.1:9\nnoproxy=${npmTool.host}\n`);
    const env = { ...WITHOUT_NPM_SETTINGS, NPM_CONFIG_HTTPS_PROXY: 'http://127.0.0.1:9', NPM_CONFIG_PROXY: 'http://127.0.0.1:9', npm_config_fetch_retries: '0' };
    const base = origin.urlFor('/', npmTool.host).replace(/\/$/, '');
    const build = ['bash', '-c', npmTool.command(dir, base)];
    const archive = join(dir, '.btrfly');
    const rec = await runCli(['run', '--record', '--tag=n', '--archive', archive, '--resolve', `${npmTool.host}:${origin.host}`, '--upstream-ca', origin.caPath!, '--', ...build], { env, cwd: dir });
    expect(rec.stderr).toMatch(/recorded tag "n" .*: [1-9]\d* requests/);
    expect(rec.code).toBe(0);
    const installed = readdirSync(join(dir, 'out', 'node_modules')).sort();
    expect(installed).toContain('btrfly-demo-top');
    await origin.close();
    const play = await runCli(['run', '--playback', '--tag=n', '--archive', archive, '--', ...build], { env, cwd: dir });
    expect(play.stderr).toContain(' 0 misses');
    expect(play.code).toBe(0);
    expect(readdirSync(join(dir, 'out', 'node_modules')).sort()).toEqual(installed);
  }, 90_000);
});
