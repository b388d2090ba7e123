import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliEnv, cliWorkDir, copyFixtureArchive, FIXTURE_ARCHIVE, gitFsck, run, runCli, spawnCli, tmpDir } from './index';

describe('CLI helpers', () => {
  test('runCli runs bin/run.js under this Node in an isolated work dir', async () => {
    const result = await runCli(['--version']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`node-v${process.versions.node}`);
    expect(cliWorkDir()).not.toBe(process.cwd());
    expect(cliEnv().XDG_CONFIG_HOME).toContain('btrfly-cli-home-');
    expect((await runCli(['no-such-command'])).code).not.toBe(0);
  });

  test('spawnCli waits for output and reports the outcome', async () => {
    const proc = spawnCli(['--help']);
    await proc.waitFor(/USAGE/);
    const result = await proc.exited;
    expect(result.code).toBe(0);
    await expect(spawnCli(['--version']).waitFor('never printed', 5000)).rejects.toThrow(/before printing/);
  });

  test('tmpDir makes a fresh directory each time', () => {
    const a = tmpDir();
    expect(a).not.toBe(tmpDir());
    expect(existsSync(a)).toBe(true);
  });

  test('gitFsck passes a sound repository and fails a corrupted one', async () => {
    const dir = tmpDir();
    await run('git', ['init', '-q', '--bare', dir]);
    const blob = (await run('git', ['--git-dir', dir, 'hash-object', '-w', '--stdin'], { input: 'some body\n' })).stdout.trim();
    await gitFsck(dir);
    const object = join(dir, 'objects', blob.slice(0, 2), blob.slice(2));
    writeFileSync(object, 'not a zlib stream');
    await expect(gitFsck(dir)).rejects.toThrow(/not clean/);
  });

  test('copyFixtureArchive copies the example archive, or says there is none', () => {
    if (existsSync(FIXTURE_ARCHIVE)) {
      expect(existsSync(join(copyFixtureArchive(), 'HEAD'))).toBe(true);
    } else {
      expect(() => copyFixtureArchive()).toThrow(/no example archive/);
    }
    const source = join(tmpDir(), 'src');
    mkdirSync(source);
    writeFileSync(join(source, 'HEAD'), 'ref: refs/heads/main\n');
    expect(existsSync(join(copyFixtureArchive(source), 'HEAD'))).toBe(true);
  });
});
