import { lastGitMessage } from '../../src/format/git-process';
import { displayUrl, normalizeRemoteUrl, urlCredential, validateRemoteName } from '../../src/format/remote-config';

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
    // The userinfo ends at the last "@" before the path, as git reads it.
    expect(displayUrl('https://u:p@ss@git.example.com/x.git')).toBe('https://u:***@git.example.com/x.git');
    expect(displayUrl('https://ghp_abc123@github.com/x.git')).toBe('https://***@github.com/x.git');
  });

  it('finds a password or an access token in a URL, and the URL without it', () => {
    expect(urlCredential('https://u:p@ss@git.example.com/x.git')).toEqual({ kind: 'password', without: 'https://u@git.example.com/x.git' });
    expect(urlCredential('ssh://git:pw@host:2222/x.git')).toEqual({ kind: 'password', without: 'ssh://git@host:2222/x.git' });
    expect(urlCredential('https://glpat-xyz@gitlab.example/x.git')).toEqual({ kind: 'token', without: 'https://gitlab.example/x.git' });
    for (const none of ['https://u@git.example.com/x.git', 'https://u:@git.example.com/x.git', 'git@host:x.git', '/srv/x.git', 'https://h/a@b']) {
      expect(urlCredential(none)).toBeUndefined();
    }
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
