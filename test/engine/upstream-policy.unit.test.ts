import { serviceDenyList, UpstreamPolicy } from '../../src/engine/proxy/upstream-policy';
import { Upstream } from '../../src/engine/proxy/upstream';

describe('the upstream address check of serve', () => {
  const policy = new UpstreamPolicy(serviceDenyList(['10.0.0.5', undefined]));

  test('IPv4: metadata, loopback, 0.0.0.0/8 and the service itself are denied; other addresses pass', () => {
    expect(policy.deniedBy('169.254.169.254')).toBe('169.254.0.0/16');
    expect(policy.deniedBy('127.0.0.1')).toBe('127.0.0.0/8');
    expect(policy.deniedBy('127.8.9.10')).toBe('127.0.0.0/8');
    expect(policy.deniedBy('0.0.0.0')).toBe('0.0.0.0/8');
    expect(policy.deniedBy('10.0.0.5')).toBe('10.0.0.5');
    expect(policy.deniedBy('10.0.0.6')).toBeUndefined();
    expect(policy.deniedBy('93.184.216.34')).toBeUndefined();
  });

  test('IPv6: link-local, ::1 and :: are denied; a global address passes', () => {
    expect(policy.deniedBy('fe80::1')).toBe('fe80::/10');
    expect(policy.deniedBy('febf:ffff::1')).toBe('fe80::/10');
    expect(policy.deniedBy('::1')).toBe('::1/128');
    expect(policy.deniedBy('0:0:0:0:0:0:0:1')).toBe('::1/128');
    expect(policy.deniedBy('::')).toBe('::/128');
    expect(policy.deniedBy('2606:4700::1111')).toBeUndefined();
  });

  test('IPv4-mapped IPv6 addresses are checked as the IPv4 address they map', () => {
    expect(policy.deniedBy('::ffff:127.0.0.1')).toBe('127.0.0.0/8');
    expect(policy.deniedBy('::ffff:7f00:1')).toBe('127.0.0.0/8');
    expect(policy.deniedBy('::ffff:a9fe:a9fe')).toBe('169.254.0.0/16');
    expect(policy.deniedBy('::ffff:10.0.0.5')).toBe('10.0.0.5');
    expect(policy.deniedBy('::ffff:8.8.8.8')).toBeUndefined();
  });

  test('an allow entry lets a denied address through, and only it', () => {
    const p = new UpstreamPolicy(serviceDenyList([]), ['127.0.0.0/8', '::1']);
    expect(p.deniedBy('127.0.0.1')).toBeUndefined();
    expect(p.deniedBy('::ffff:127.0.0.1')).toBeUndefined();
    expect(p.deniedBy('::1')).toBeUndefined();
    expect(p.deniedBy('169.254.169.254')).toBe('169.254.0.0/16');
  });

  test('the refusal is one line naming the address, the rule and --allow-upstream', () => {
    expect(() => policy.check('metadata.test', '169.254.169.254')).toThrow(
      /^upstream metadata\.test: address 169\.254\.169\.254 is denied \(deny-upstream 169\.254\.0\.0\/16\): not fetched; to record from it start serve with --allow-upstream 169\.254\.169\.254\/32$/,
    );
  });

  test('an entry that is not an address or CIDR is a usage error in one line', () => {
    for (const bad of ['10.0.0.0/33', 'fe80::/129', 'example.com', '10.0.0/8', '']) {
      expect(() => new UpstreamPolicy([bad])).toThrow(/^--deny-upstream ".*" is not an address or CIDR: write it like 10\.0\.0\.0\/8 or fd00::\/8$/);
    }
    expect(() => new UpstreamPolicy([], ['nope'])).toThrow(/^--allow-upstream "nope"/);
  });
});

describe('Upstream with a deny list', () => {
  const request = (u: Upstream, url: string) => {
    const { req, response } = u.request(new URL(url), 'GET', {});
    req.end();
    return response;
  };

  test('refuses an IP literal before connecting, and a name whose every address is denied (--resolve pins included)', async () => {
    const u = new Upstream({ deny: serviceDenyList([]), resolve: ['meta.test:169.254.169.254'] });
    try {
      expect(() => u.request(new URL('http://[::ffff:169.254.169.254]/'), 'GET', {})).toThrow(/address ::ffff:a9fe:a9fe is denied/);
      await expect(request(u, 'http://meta.test/latest/')).rejects.toMatchObject({ data: { kind: 'denied', address: '169.254.169.254' } });
      await expect(request(u, 'http://localhost:1/')).rejects.toMatchObject({ data: { kind: 'denied' } });
    } finally {
      u.close();
    }
  });

  test('without a deny list (run, the host-mode daemon) loopback is reached as before', async () => {
    const u = new Upstream({});
    try {
      await expect(request(u, 'http://127.0.0.1:1/')).rejects.toMatchObject({ data: { kind: 'connection refused' } });
    } finally {
      u.close();
    }
  });
});
