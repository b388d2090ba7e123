/**
 * `npm run bench` in miniature, second half: the sections measured against other tools
 * (mitmproxy, Verdaccio, nginx per connection), under `--isolate`, and host mode's start/stop
 * against `update-ca-certificates`. Verdaccio is installed into the user's cache on first use
 * (48 s here), hence the headroom.
 */
import { benchSmoke } from './helpers/bench-smoke';

test('the bench sections against peer tools run with tiny sizes and print a table of figures', async () => {
  await benchSmoke(
    [
      ['connections', '## New connections'],
      ['mitmproxy', '## mitmproxy'],
      ['isolate', '## Isolated runs'],
      ['npm', '## npm install'],
      ['host', '## Host mode start and stop'],
    ],
    300_000,
  );
}, 310_000);
