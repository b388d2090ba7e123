import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writePrivateFile } from '../../src/engine/base/private-file';
import { tmpDir } from '../helpers';

test('writePrivateFile replaces the file atomically with a 0600 one and leaves no temp file', async () => {
  const dir = tmpDir('btrfly-private-file-');
  const file = path.join(dir, 'login.json');
  await fs.writeFile(file, 'old\n', { mode: 0o644 });
  await writePrivateFile(file, '{"token": "t"}\n');
  expect(await fs.readFile(file, 'utf8')).toBe('{"token": "t"}\n');
  expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
  expect(await fs.readdir(dir)).toEqual(['login.json']);
  await expect(writePrivateFile(path.join(dir, 'missing', 'login.json'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  expect(await fs.readdir(dir)).toEqual(['login.json']);
});
