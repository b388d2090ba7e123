import { execFileSync } from 'node:child_process';
import { createNetns, hasNetns, linkNetns, linkStats, run, startOrigin, sweepStaleNetns } from './index';
import { describeWhen } from './when';

// CI runs as root and must not silently skip what it exists to check.
const describeNetns = describeWhen(hasNetns() ? undefined : 'network namespaces (root and iproute2)');

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

describeNetns('network namespaces', () => {
  test('two linked namespaces reach each other; an empty one reaches nothing', async () => {
    const client = await createNetns();
    const server = await createNetns();
    const empty = await createNetns();
    const link = await linkNetns(client, server);
    expect(link.a.address).toMatch(/^10\.200\.\d+\.\d+$/);

    const ping = await client.exec('ping', ['-c', '1', '-W', '2', link.b.address]);
    expect(ping.stdout).toContain('1 received');

    const origin = await startOrigin({ https: true, netns: server, host: link.b.address });
    const ok = await client.exec('curl', ['-sS', '--cacert', origin.caPath!, `${origin.url}/gen/1000?seed=1`, '-o', '/dev/null', '-w', '%{http_code}']);
    expect(ok.stdout).toBe('200');
    expect((await origin.stats()).total).toBe(1);

    const before = await linkStats(link.b);
    expect(before.rxPackets).toBeGreaterThan(0);
    const blocked = await empty.exec('curl', ['-sS', '--max-time', '3', `${origin.url}/counter`]);
    expect(blocked.code).not.toBe(0);
    expect(await linkStats(link.b)).toEqual(before);
    expect((await origin.stats()).total).toBe(1);

    // The host itself has no route into the namespaces either: nothing leaked out.
    const fromHost = await run('curl', ['-sS', '--noproxy', '*', '--max-time', '3', `${origin.url}/counter`]);
    expect(fromHost.code).not.toBe(0);
  });

  test('the packet counter sees a single connection attempt', async () => {
    const a = await createNetns();
    const b = await createNetns();
    const link = await linkNetns(a, b);
    const before = await linkStats(link.b);
    await a.exec('curl', ['-sS', '--max-time', '3', `http://${link.b.address}:9/`]);
    const after = await linkStats(link.b);
    expect(after.rxPackets).toBeGreaterThan(before.rxPackets);
  });

  test('close() kills what runs inside and deletes the namespace', async () => {
    const ns = await createNetns();
    const sleeper = ns.spawn('sleep', ['600']);
    expect(namespaces()).toContain(ns.name);
    await ns.close();
    expect(sleeper.exitCode !== null || sleeper.signalCode !== null).toBe(true);
    expect(namespaces()).not.toContain(ns.name);
    await ns.close();
  });

  test('the sweep removes namespaces of dead test processes only', async () => {
    const mine = await createNetns();
    const deadPid = execFileSync('sh', ['-c', 'sh -c "echo \\$\\$"'], { encoding: 'utf8' }).trim();
    const stale = `btrfly-t${deadPid}-0`;
    execFileSync('ip', ['netns', 'add', stale]);
    try {
      expect(sweepStaleNetns()).toContain(stale);
      expect(namespaces()).not.toContain(stale);
      expect(namespaces()).toContain(mine.name);
    } finally {
      execFileSync('sh', ['-c', `ip netns del ${stale} 2>/dev/null || true`]);
    }
  });
});
