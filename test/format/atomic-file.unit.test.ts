/** `-o FILE` (export, sbom): what is at the name stays what it was (src/format/atomic-file.ts). */
import { execFileSync } from 'node:child_process';
import { createReadStream, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { writeFileAtomically } from '../../src/format/atomic-file';

const dir = (): string => mkdtempSync(join(tmpdir(), 'btrfly-atomic-'));

describe('writeFileAtomically', () => {
  it('writes a new file, and replaces an existing one keeping its mode', async () => {
    const d = dir();
    await writeFileAtomically(join(d, 'new.json'), ['{}\n']);
    expect(readFileSync(join(d, 'new.json'), 'utf8')).toBe('{}\n');
    writeFileSync(join(d, 'secret.json'), 'old', { mode: 0o600 });
    await writeFileAtomically(join(d, 'secret.json'), ['new']);
    expect(readFileSync(join(d, 'secret.json'), 'utf8')).toBe('new');
    expect(statSync(join(d, 'secret.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(d).sort()).toEqual(['new.json', 'secret.json']);
  });

  it('follows a symlink: the link stays, its target gets the bytes (also when the target does not exist yet)', async () => {
    const d = dir();
    writeFileSync(join(d, 'target.json'), 'keep');
    symlinkSync('target.json', join(d, 'link.json'));
    await writeFileAtomically(join(d, 'link.json'), ['written']);
    expect(lstatSync(join(d, 'link.json')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(d, 'link.json'))).toBe('target.json');
    expect(readFileSync(join(d, 'target.json'), 'utf8')).toBe('written');
    symlinkSync('later.json', join(d, 'dangling.json'));
    await writeFileAtomically(join(d, 'dangling.json'), ['later']);
    expect(lstatSync(join(d, 'dangling.json')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(d, 'later.json'), 'utf8')).toBe('later');
  });

  it('writes through a device and a FIFO rather than replacing them', async () => {
    await writeFileAtomically('/dev/null', ['nothing']);
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    const d = dir();
    const fifo = join(d, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const read = (async () => {
      let got = '';
      for await (const chunk of createReadStream(fifo, 'utf8')) got += chunk;
      return got;
    })();
    await writeFileAtomically(fifo, ['through the pipe']);
    expect(await read).toBe('through the pipe');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('leaves the old file and no temp file when the source fails', async () => {
    const d = dir();
    writeFileSync(join(d, 'out.har'), 'old');
    const failing = new Readable({
      read() {
        this.destroy(new Error('source broke'));
      },
    });
    await expect(writeFileAtomically(join(d, 'out.har'), failing)).rejects.toThrow('source broke');
    expect(readFileSync(join(d, 'out.har'), 'utf8')).toBe('old');
    expect(readdirSync(d)).toEqual(['out.har']);
  });
});
