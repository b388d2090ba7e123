import { lastGitMessage } from '../../src/format/git';
import { displayUrl, normalizeRemoteUrl, validateRemoteName } from '../../src/format/remote';

describe('remote URLs and names', () => {
  it('makes a local path absolute and keeps URLs and scp-like addresses as given', () => {
    expect(normalizeRemoteUrl('../hub.git', '/work/a')).toBe('/work/hub.git');
    expect(normalizeRemoteUrl('/srv/hub.git', '/work/a')).toBe('/srv/hub.git');
    for (const url of ['https://git.example.com/x.git', 'ssh://git@host:2222/x.git', 'file:///srv/x.git', 'git@host:team/x.git']) {
      expect(normalizeRemoteUrl(url, '/work/a')).toBe(url);
    }
  });

  it('hides a password written into a URL', () => {
    expect(displayUrl('https://u:secret@git.example.com/x.git')).toBe('https://u:***@git.example.com/x.git');
    expect(displayUrl('https://u@git.example.com/x.git')).toBe('https://u@git.example.com/x.git');
    expect(displayUrl('git@host:x.git')).toBe('git@host:x.git');
  });

  it('refuses remote names git could not use as a ref path', () => {
    expect(validateRemoteName('origin')).toBe('origin');
    for (const bad of ['', '-x', 'a/b', 'a..b', 'x.lock', 'a b']) expect(() => validateRemoteName(bad)).toThrow(/not a usable remote name/);
  });
});

describe("git's telling line", () => {
  it('picks the ssh or http complaint over the generic fatal line and skips progress', () => {
    const ssh = 'root@127.0.0.1: Permission denied (publickey).\r\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n';
    expect(lastGitMessage(ssh)).toBe('root@127.0.0.1: Permission denied (publickey)');
    const http = "Counting objects: 100% (3/3), done.\rfatal: Authentication failed for 'https://h/x.git/'\n";
    expect(lastGitMessage(http)).toBe("Authentication failed for 'https://h/x.git/'");
    expect(lastGitMessage('error: something odd\n')).toBe('something odd');
  });
});
