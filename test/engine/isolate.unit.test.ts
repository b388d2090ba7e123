import { droppedFromNftJson, ipBatch, nftRuleset } from '../../src/engine/command/isolate/net-setup';
import { FakeNames } from '../../src/engine/command/isolate/fake-names';
import { classifyFirstBytes } from '../../src/engine/command/isolate/first-bytes';
import { userNamespaceProblem } from '../../src/engine/command/isolate/kernel';
import { originalDestination, parseProcNetTcp } from '../../src/engine/command/isolate/proc-net';

// Captured inside a namespace: a listener on 127.0.0.1:4444, the client 198.19.255.254:33852
// whose connection to 93.184.216.34:8443 was redirected to it, and the accepted side.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:115C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1640083 1 0 100 0 0 10 0
   1: 0100007F:115C FEFF13C6:843C 01 00000000:00000000 00:00000000 00000000     0        0 1640085 1 0 20 0 0 10 -1
   2: FEFF13C6:843C 22D8B85D:20FB 01 00000000:00000000 00:00000000 00000000     0        0 1640084 2 0 20 0 0 10 -1
`;

describe('original destination from /proc/net/tcp', () => {
  it('finds the address the redirected client connected to', () => {
    const rows = parseProcNetTcp(TCP);
    expect(rows).toHaveLength(3);
    expect(originalDestination(rows, { address: '198.19.255.254', port: 33852 }, { address: '127.0.0.1', port: 4444 })).toEqual({ address: '93.184.216.34', port: 8443 });
  });
  it('says nothing once the client is gone', () => {
    expect(originalDestination(parseProcNetTcp(TCP), { address: '198.19.255.254', port: 1 }, { address: '127.0.0.1', port: 4444 })).toBeUndefined();
  });
  it('reads IPv6 rows', () => {
    const v6 = 'sl local rem\n 0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:01BB 01\n';
    const [row] = parseProcNetTcp(v6);
    expect(row.local).toEqual({ address: '::1', port: 8080 });
    expect(row.remote).toEqual({ address: '127.0.0.1', port: 443 });
  });
});

describe('first bytes of an intercepted connection', () => {
  it.each([
    [Buffer.from([0x16, 0x03, 0x01]), 'tls'],
    [Buffer.from('GET / HTTP/1.1\r\n'), 'http'],
    [Buffer.from('PROPFIND /x HTTP/1.1\r\n'), 'http'],
    [Buffer.from('PRI * HTTP/2.0\r\n'), 'other'],
    [Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), 'other'],
    [Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]), 'other'],
  ])('%j is %s', (chunk, kind) => expect(classifyFirstBytes(chunk)).toBe(kind));
});

describe('kernel check for unprivileged user namespaces', () => {
  it('names the sysctl and the command that allows them', () => {
    expect(userNamespaceProblem({ unprivilegedUsernsClone: 0 }, false)).toMatch(/sysctl -w kernel.unprivileged_userns_clone=1/);
    expect(userNamespaceProblem({ maxUserNamespaces: 0 }, false)).toMatch(/user.max_user_namespaces=15000/);
    expect(userNamespaceProblem({ apparmorRestrict: 1 }, false)).toMatch(/apparmor_restrict_unprivileged_userns=0/);
  });
  it('is silent when they are allowed, and for root', () => {
    expect(userNamespaceProblem({ unprivilegedUsernsClone: 1, maxUserNamespaces: 96367 }, false)).toBeUndefined();
    expect(userNamespaceProblem({ unprivilegedUsernsClone: 0 }, true)).toBeUndefined();
  });
});

describe('the packets the isolated namespace dropped', () => {
  // `nft -j list table inet btrfly` after a UDP datagram to 192.0.2.7:9999 was refused (EPERM) inside.
  const NFT_JSON = "{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\", \"release_name\": \"Lester Gooch #5\", \"json_schema_version\": 1}}, {\"table\": {\"family\": \"inet\", \"name\": \"btrfly\", \"handle\": 1}}, {\"set\": {\"family\": \"inet\", \"name\": \"udp4\", \"table\": \"btrfly\", \"type\": [\"ipv4_addr\", \"inet_service\"], \"handle\": 3, \"size\": 4096, \"elem\": [{\"concat\": [\"192.0.2.7\", 9999]}]}}, {\"set\": {\"family\": \"inet\", \"name\": \"udp6\", \"table\": \"btrfly\", \"type\": [\"ipv6_addr\", \"inet_service\"], \"handle\": 4, \"size\": 4096}}, {\"set\": {\"family\": \"inet\", \"name\": \"other4\", \"table\": \"btrfly\", \"type\": [\"ipv4_addr\", \"inet_proto\"], \"handle\": 5, \"size\": 4096}}, {\"set\": {\"family\": \"inet\", \"name\": \"other6\", \"table\": \"btrfly\", \"type\": [\"ipv6_addr\", \"inet_proto\"], \"handle\": 6, \"size\": 4096}}, {\"chain\": {\"family\": \"inet\", \"table\": \"btrfly\", \"name\": \"nat_out\", \"handle\": 1, \"type\": \"nat\", \"hook\": \"output\", \"prio\": -100, \"policy\": \"accept\"}}, {\"chain\": {\"family\": \"inet\", \"table\": \"btrfly\", \"name\": \"filter_out\", \"handle\": 2, \"type\": \"filter\", \"hook\": \"output\", \"prio\": 0, \"policy\": \"accept\"}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"nat_out\", \"handle\": 7, \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"payload\": {\"protocol\": \"ip\", \"field\": \"daddr\"}}, \"right\": {\"prefix\": {\"addr\": \"127.0.0.0\", \"len\": 8}}}}, {\"return\": null}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"nat_out\", \"handle\": 8, \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"payload\": {\"protocol\": \"ip6\", \"field\": \"daddr\"}}, \"right\": \"::1\"}}, {\"return\": null}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"nat_out\", \"handle\": 10, \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"meta\": {\"key\": \"l4proto\"}}, \"right\": {\"set\": [\"tcp\", \"udp\"]}}}, {\"match\": {\"op\": \"==\", \"left\": {\"payload\": {\"protocol\": \"th\", \"field\": \"dport\"}}, \"right\": 53}}, {\"match\": {\"op\": \"==\", \"left\": {\"meta\": {\"key\": \"nfproto\"}}, \"right\": \"ipv4\"}}, {\"redirect\": {\"port\": 53}}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"nat_out\", \"handle\": 11, \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"meta\": {\"key\": \"l4proto\"}}, \"right\": \"tcp\"}}, {\"redirect\": {\"port\": 4444}}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"filter_out\", \"handle\": 12, \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"payload\": {\"protocol\": \"ip\", \"field\": \"daddr\"}}, \"right\": {\"prefix\": {\"addr\": \"127.0.0.0\", \"len\": 8}}}}, {\"accept\": null}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"filter_out\", \"handle\": 13, \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"payload\": {\"protocol\": \"ip6\", \"field\": \"daddr\"}}, \"right\": \"::1\"}}, {\"accept\": null}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"filter_out\", \"handle\": 14, \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"meta\": {\"key\": \"l4proto\"}}, \"right\": \"tcp\"}}, {\"accept\": null}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"filter_out\", \"handle\": 15, \"expr\": [{\"set\": {\"op\": \"add\", \"elem\": {\"concat\": [{\"payload\": {\"protocol\": \"ip\", \"field\": \"daddr\"}}, {\"payload\": {\"protocol\": \"udp\", \"field\": \"dport\"}}]}, \"set\": \"@udp4\"}}, {\"drop\": null}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"filter_out\", \"handle\": 16, \"expr\": [{\"set\": {\"op\": \"add\", \"elem\": {\"concat\": [{\"payload\": {\"protocol\": \"ip6\", \"field\": \"daddr\"}}, {\"payload\": {\"protocol\": \"udp\", \"field\": \"dport\"}}]}, \"set\": \"@udp6\"}}, {\"drop\": null}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"filter_out\", \"handle\": 17, \"expr\": [{\"set\": {\"op\": \"add\", \"elem\": {\"concat\": [{\"payload\": {\"protocol\": \"ip\", \"field\": \"daddr\"}}, {\"meta\": {\"key\": \"l4proto\"}}]}, \"set\": \"@other4\"}}, {\"drop\": null}]}}, {\"rule\": {\"family\": \"inet\", \"table\": \"btrfly\", \"chain\": \"filter_out\", \"handle\": 18, \"expr\": [{\"set\": {\"op\": \"add\", \"elem\": {\"concat\": [{\"payload\": {\"protocol\": \"ip6\", \"field\": \"daddr\"}}, {\"meta\": {\"key\": \"l4proto\"}}]}, \"set\": \"@other6\"}}, {\"drop\": null}]}}]}";
  it('lists each address and port from the nft sets', () => {
    expect(droppedFromNftJson(NFT_JSON)).toEqual([{ protocol: 'udp', address: '192.0.2.7', port: 9999 }]);
  });
  it('builds rules that redirect TCP and DNS and drop the rest', () => {
    const rules = nftRuleset({ catchAllPort: 4444, dnsPort: 53 });
    expect(rules).toContain('meta l4proto tcp redirect to :4444');
    expect(rules).toContain('redirect to :53');
    expect(ipBatch()).toContain('route add default dev lo');
  });
});

describe('an address of its own for every name the isolated command resolves', () => {
  it('hands out distinct addresses in 198.18.0.0/15 and names them back, whatever the case or a trailing dot', () => {
    const names = new FakeNames();
    const a = names.addressFor('git.test');
    const b = names.addressFor('registry.test');
    expect(a).toBe('198.18.0.1');
    expect(b).toBe('198.18.0.2');
    expect(names.addressFor('GIT.test.')).toBe(a);
    expect(names.nameOf(b)).toBe('registry.test');
    expect(names.nameOf('198.18.0.3')).toBeUndefined();
  });
  it('stays below the namespace\'s own source address (198.19.255.254) across the whole range', () => {
    const names = new FakeNames();
    let last = '';
    for (let i = 0; i < 131069; i++) last = names.addressFor(`n${i}.test`);
    expect(last).toBe('198.19.255.253');
  });
  it('when every address is taken, the name asked for longest ago gives its address up', () => {
    const names = new FakeNames(2);
    names.addressFor('a.test');
    names.addressFor('b.test');
    names.addressFor('a.test');
    expect(names.addressFor('c.test')).toBe('198.18.0.2');
    expect(names.nameOf('198.18.0.2')).toBe('c.test');
    expect(names.nameOf('198.18.0.1')).toBe('a.test');
  });
});
