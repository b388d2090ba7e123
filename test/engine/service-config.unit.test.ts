import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { serveSettings } from '../../src/engine/service/service-config';
import { tmpDir } from '../helpers';

test('serve settings: flags over the config file over the defaults; paths in the file are relative to it', async () => {
  const dir = tmpDir('btrfly-serve-config-');
  const file = path.join(dir, 'serve.json');
  await fs.writeFile(file, JSON.stringify({ archive: 'archive', tokens: 'tokens.json', address: '10.0.0.5', apiPort: 9443, upstreamDns: ['1.1.1.1'], upstreamCa: ['ca.pem'] }));
  const s = await serveSettings({ address: '10.0.0.6', dnsPort: 0, upstreamDns: [] }, file);
  expect(s).toMatchObject({
    archive: path.join(dir, 'archive'),
    tokens: path.join(dir, 'tokens.json'),
    address: '10.0.0.6',
    dnsPort: 0,
    httpPort: 80,
    apiPort: 9443,
    upstreamDns: ['1.1.1.1'],
    upstreamCa: [path.join(dir, 'ca.pem')],
  });
  expect((await serveSettings({})).address).toBe('127.0.0.1');
});

test('a config file with an unknown setting or that is not JSON is refused in one line', async () => {
  const dir = tmpDir('btrfly-serve-config-');
  const file = path.join(dir, 'serve.json');
  await fs.writeFile(file, JSON.stringify({ adress: '10.0.0.5' }));
  await expect(serveSettings({}, file)).rejects.toThrow(/^unknown setting\(s\) adress in .*serve\.json: use /);
  await fs.writeFile(file, '["10.0.0.5"]');
  await expect(serveSettings({}, file)).rejects.toThrow(/is not a JSON object of settings/);
  await fs.writeFile(file, '{ address: 10.0.0.5 }');
  await expect(serveSettings({}, file)).rejects.toThrow(/^cannot read the service config .*serve\.json: .*: it must be a JSON object of settings$/);
});

test('deny and allow lists come from the file (denyUpstream, allowUpstream) or the flags; a value that is not a list of strings is refused', async () => {
  const dir = tmpDir('btrfly-serve-config-');
  const file = path.join(dir, 'serve.json');
  await fs.writeFile(file, JSON.stringify({ denyUpstream: ['10.0.0.0/8'], allowUpstream: ['127.0.0.0/8'] }));
  expect(await serveSettings({ allowUpstream: ['127.0.0.1/32'] }, file)).toMatchObject({ denyUpstream: ['10.0.0.0/8'], allowUpstream: ['127.0.0.1/32'] });
  expect(await serveSettings({})).toMatchObject({ denyUpstream: [], allowUpstream: [] });
  await fs.writeFile(file, JSON.stringify({ allowUpstream: '127.0.0.0/8' }));
  await expect(serveSettings({}, file)).rejects.toThrow(/^setting allowUpstream in .*serve\.json is not a list of strings: write "allowUpstream": \["..."\]$/);
});

test('a setting of the wrong type is refused in one line naming the key and what it takes (JSON schema)', async () => {
  const dir = tmpDir('btrfly-serve-config-');
  const file = path.join(dir, 'serve.json');
  await fs.writeFile(file, JSON.stringify({ dnsPort: '53' }));
  await expect(serveSettings({}, file)).rejects.toThrow(/^setting dnsPort in .*serve\.json is not a port number \(an integer from 0 to 65535\): write "dnsPort": 53$/);
  await fs.writeFile(file, JSON.stringify({ apiPort: 70000 }));
  await expect(serveSettings({}, file)).rejects.toThrow(/^setting apiPort in .*serve\.json is not a port number \(an integer from 0 to 65535\): write "apiPort": 8443$/);
  await fs.writeFile(file, JSON.stringify({ address: 10 }));
  await expect(serveSettings({}, file)).rejects.toThrow(/^setting address in .*serve\.json is not an address \(a non-empty string\): write "address": "10\.0\.0\.5"$/);
  await fs.writeFile(file, JSON.stringify({ upstreamDns: ['1.1.1.1', 53] }));
  await expect(serveSettings({}, file)).rejects.toThrow(/^setting upstreamDns in .*serve\.json is not a list of strings: write "upstreamDns": \["..."\]$/);
  await fs.writeFile(file, JSON.stringify({ dnsPort: 5353, httpPort: 8080, upstreamProxy: 'http://127.0.0.1:3128' }));
  expect(await serveSettings({}, file)).toMatchObject({ dnsPort: 5353, httpPort: 8080, upstreamProxy: 'http://127.0.0.1:3128' });
});
