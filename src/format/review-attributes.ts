/**
 * The `.gitattributes` each recording's tree carries, so that a git host's pull-request view
 * of a re-recording reads like a lockfile change: `volatile.json` and `bodies/` collapsed as
 * generated (GitHub reads `linguist-generated`, GitLab `gitlab-generated`; `-diff`/`binary`
 * make git itself print "Binary files differ"), `packages.lock` and `manifest.json` shown.
 * https://github.com/github-linguist/linguist/blob/main/docs/overrides.md#generated-code,
 * https://docs.gitlab.com/user/project/merge_requests/changes/#collapse-generated-files
 */
export const REVIEW_ATTRIBUTES = [
  '# Written by btrfly with each recording: what a reviewer need not read is collapsed.',
  'volatile.json linguist-generated=true gitlab-generated -diff',
  'bodies/** linguist-generated=true gitlab-generated binary',
  'packages.lock linguist-generated=false -gitlab-generated',
  'manifest.json linguist-generated=false -gitlab-generated',
  '',
].join('\n');
