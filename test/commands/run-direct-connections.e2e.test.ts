/**
 * Without --isolate, a client that ignores the proxy variables connects around btrfly: what it
 * fetches is not recorded, and at playback it still reaches the network. The run says so at the
 * end, naming the server and the program, and points to --isolate; the command's status is kept.
 * The build runs in a namespace of the test's own, linked to another holding the origin (a
 * connection to a loopback address is not counted: the command's own local servers are not the
 * network).
 */
import { join } from 'node:path';
import { btrflyIn, createNetns, hasNetns, linkNetns, startOrigin, tmpDir, type Netns, type Origin, type VethLink } from '../helpers';
import { describeWhen } from '../helpers/when';

const describeNetns = describeWhen(hasNetns() ? undefined : 'network namespaces (root and iproute2)');

describeNetns('btrfly run names the servers a command reached around it', () => {
  let builder: Netns;
  let link: VethLink;
  let origin: Origin;

  beforeAll(async () => {
    builder = await createNetns();
    const originNs = await createNetns();
    link = await linkNetns(builder, originNs);
    origin = await startOrigin({ netns: originNs, host: link.b.address });
  });

  afterAll(async () => {
    await origin?.close().catch(() => undefined);
  });

  it('record and playback: a client with --noproxy is named with its server, the one through the proxy is not, and the exit status is the command\'s', async () => {
    const archive = join(tmpDir(), 'archive');
    // The origin answers it after 3 s, so the connection lasts many looks at the command's sockets,
    // also on a busy machine (curl 7.88's --limit-rate does not slow a download to /dev/null).
    const direct = `http://${link.b.address}:${origin.port}/slow/3000`;
    const proxied = `http://origin.test:${origin.port}/gen/1000?seed=proxied`;
    const script = `curl -sSf -o /dev/null ${proxied} && curl -sSf --noproxy '*' -o /dev/null ${direct}`;
    const warning = (what: string): string[] => [
      `btrfly: warning: the command connected to 1 server(s) around btrfly, so ${what}:`,
      `  ${link.b.address}:${origin.port} (curl)`,
      'btrfly: make those clients use HTTPS_PROXY and HTTP_PROXY, or run with --isolate, which records them (and names what it cannot carry)',
    ];
    const rec = await btrflyIn(builder, ['run', '--record', '--tag=t', '--archive', archive, '--resolve', `origin.test:${link.b.address}`, '--', 'sh', '-c', script]);
    expect(rec.stderr).toContain(warning('what it fetched there is not in the recording').join('\n') + '\n');
    expect(rec.stderr).toMatch(/recorded tag "t" .*: 1 requests, 1 entries/);
    expect(rec.code).toBe(0);

    const play = await btrflyIn(builder, ['run', '--playback', '--tag=t', '--archive', archive, '--', 'sh', '-c', script]);
    expect(play.stderr).toContain(warning('the playback did not keep it from the network').join('\n') + '\n');
    expect(play.code).toBe(0);

    const quiet = await btrflyIn(builder, ['run', '--playback', '--tag=t', '--archive', archive, '--', 'sh', '-c', `curl -sSf -o /dev/null ${proxied}; exit 4`]);
    expect(quiet.stderr).not.toContain('around btrfly');
    expect(quiet.code).toBe(4);
  });
});
