/**
 * bin/btrfly, the installed command (a POSIX sh launcher): a BTRFLY_NODE that names no runtime
 * is one line that says which variable and what to do, not the shell's "exec: …: not found".
 */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';

const LAUNCHER = join(resolve(__dirname, '..', '..'), 'bin', 'btrfly');

function launch(env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('sh', [LAUNCHER, '--version'], { env: { PATH: '/usr/bin:/bin', ...env } }, (e, stdout, stderr) => {
      done({ code: e ? Number((e as { code?: number }).code) : 0, stdout, stderr });
    });
  });
}

test.each(['/no/such/node', '/etc/passwd', '/tmp'])('BTRFLY_NODE=%s: one line, exit 1', async (node) => {
  const r = await launch({ BTRFLY_NODE: node });
  expect(r).toEqual({
    code: 1,
    stdout: '',
    stderr: `btrfly: BTRFLY_NODE=${node} is not an executable file: point it at a node of version 22.15 or later, or unset it\n`,
  });
});

test('BTRFLY_NODE naming a good runtime runs btrfly on it', async () => {
  const r = await launch({ BTRFLY_NODE: process.execPath });
  expect(r.stdout).toMatch(new RegExp(`^btrfly/\\S+ linux-\\S+ node-v${process.versions.node.replace(/\./g, '\\.')}\\n`));
  expect(r.code).toBe(0);
});
