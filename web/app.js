// btrfly's web UI: one page, no framework, no build step. It reads the service's JSON API
// with the token the user typed (kept in sessionStorage, sent as a bearer token) and builds
// the page with DOM calls only. Every string from the archive (URLs, tags, summaries) is
// attacker-controlled: it goes in as text (append/textContent), never as markup.
'use strict';

(() => {
  const TOKEN_KEY = 'btrfly.token';
  const REFRESH_MS = 2000;
  const main = document.getElementById('main');
  let refreshTimer;

  /** An element with attributes and children; strings become text nodes. */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'onclick' || k === 'onsubmit' || k === 'onchange') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c);
    return e;
  }

  /** A table: `columns` are headers (a leading '>' right-aligns), `rows` arrays of cells. */
  function table(columns, rows, attrs) {
    const right = columns.map((c) => c.startsWith('>'));
    return h(
      'table',
      attrs,
      h('thead', null, h('tr', null, columns.map((c, i) => h('th', right[i] ? { class: 'num' } : null, c.replace(/^>/, ''))))),
      h('tbody', null, rows.map((r) => h('tr', null, r.map((cell, i) => h('td', right[i] ? { class: 'num' } : null, cell))))),
    );
  }

  // formatSize comes from shared.js: the CLI's own function, served by the service.
  const size = formatSize;
  const sizeCell = (bytes) => h('span', { title: `${bytes} bytes` }, size(bytes));
  const when = (iso) => (iso ? new Date(iso).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');
  const link = (hash, text) => h('a', { href: hash }, text);
  const enc = encodeURIComponent;
  const digest = (sha) => h('code', { class: 'digest' }, sha);
  const url = (u, ordinal) => h('code', { class: 'url' }, ordinal ? `${u} #${ordinal}` : u);

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  /** GET one API path with the token; a 401 logs out, any other error is thrown with the service's one-line message. */
  async function api(path) {
    const res = await fetch(path, { headers: { authorization: `Bearer ${token()}`, accept: 'application/json' }, cache: 'no-store' });
    const body = await res.json().catch(() => null);
    if (res.ok) return body;
    const message = (body && body.error && body.error.message) || `the service answered ${res.status}`;
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(message);
    }
    throw new Error(message);
  }

  function show(...nodes) {
    main.replaceChildren(...nodes);
  }

  function showLogin(message) {
    document.getElementById('nav').hidden = true;
    document.getElementById('logout').hidden = true;
    document.getElementById('who').textContent = '';
    const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: '', placeholder: 'btf_…', size: 60 });
    show(
      h(
        'form',
        {
          class: 'login',
          onsubmit: (ev) => {
            ev.preventDefault();
            sessionStorage.setItem(TOKEN_KEY, input.value.trim());
            start();
          },
        },
        h('h1', null, 'Log in to btrfly'),
        h('p', null, 'A token from "btrfly token create". It stays in this tab only.'),
        h('label', { for: 'token' }, 'Token'),
        input,
        h('button', { type: 'submit' }, 'Log in'),
        message ? h('p', { class: 'error', role: 'alert' }, message) : null,
      ),
    );
    input.focus();
  }

  async function start() {
    let status;
    try {
      status = await api('/v1/status');
    } catch {
      return; // api() showed the login form with the service's message
    }
    const t = status.token;
    document.getElementById('who').textContent = `token ${t.id}: ${t.scopes.join(',')} on ${t.tags.join(',')}`;
    document.getElementById('nav').hidden = false;
    document.getElementById('logout').hidden = false;
    route();
  }

  // Views. Each returns the nodes of the page; the router shows them.

  async function tagsView() {
    const tags = await api('/v1/tags');
    if (tags.length === 0) return [h('h1', null, 'Tags'), h('p', null, 'No tags yet: record one with "btrfly start record --tag=T".')];
    return [
      h('h1', null, 'Tags'),
      table(
        ['Tag', '>Recordings', '>Entries', '>Size', '>Stored', 'Last recorded'],
        tags.map((t) =>
          t.error
            ? [link(`#/tag/${enc(t.tag)}`, t.tag), h('span', { class: 'error' }, `cannot be read: ${t.error}`), '', '', '', when(t.lastRecorded)]
            : [link(`#/tag/${enc(t.tag)}`, t.tag), String(t.recordings), String(t.entries), sizeCell(t.size), sizeCell(t.storedSize), when(t.lastRecorded)],
        ),
        { id: 'tags' },
      ),
    ];
  }

  async function tagView(tag) {
    const log = await api(`/v1/log?tag=${enc(tag)}`);
    const spec = (commit) => `${tag}@${commit.slice(0, 7)}`;
    const options = (selected) => log.map((r, i) => h('option', { value: spec(r.commit), ...(i === selected ? { selected: '' } : {}) }, `${r.commit.slice(0, 7)} ${when(r.date)}`));
    const from = h('select', { id: 'diff-from', 'aria-label': 'from' }, options(Math.min(1, log.length - 1)));
    const to = h('select', { id: 'diff-to', 'aria-label': 'to' }, options(0));
    return [
      h('h1', null, h('span', { class: 'muted' }, 'Tag '), tag),
      table(
        ['Recording', 'Date', '>Entries', '>Size', 'Summary', 'Changes'],
        log.map((r, i) => [
          link(`#/recording/${enc(spec(r.commit))}`, r.commit.slice(0, 7)),
          when(r.date),
          String(r.entries),
          sizeCell(r.size),
          r.summary,
          log[i + 1] ? link(`#/diff/${enc(spec(log[i + 1].commit))}/${enc(spec(r.commit))}`, `diff with ${log[i + 1].commit.slice(0, 7)}`) : 'first recording',
        ]),
        { id: 'history' },
      ),
      h(
        'form',
        {
          class: 'compare',
          onsubmit: (ev) => {
            ev.preventDefault();
            location.hash = `#/diff/${enc(from.value)}/${enc(to.value)}`;
          },
        },
        'Compare ',
        from,
        ' with ',
        to,
        ' ',
        h('button', { type: 'submit' }, 'Diff'),
      ),
    ];
  }

  async function recordingView(spec) {
    const r = await api(`/v1/recording?spec=${enc(spec)}`);
    return [
      h('h1', null, h('span', { class: 'muted' }, 'Recording '), r.label),
      h('p', { class: 'meta' }, `${when(r.date)} · ${r.entries.length} entries · ${size(r.size)} · commit `, h('code', null, r.commit)),
      h('p', null, link(`#/tag/${enc(r.tag)}`, `history of ${r.tag}`)),
      table(
        ['Method', '>Status', '>Size', 'SHA-256', 'URL'],
        r.entries.map((e) => [e.method, String(e.status), sizeCell(e.size), digest(e.sha256), url(e.url, e.ordinal)]),
        { id: 'entries' },
      ),
    ];
  }

  async function diffView(from, to) {
    const d = await api(`/v1/diff?from=${enc(from)}&to=${enc(to)}`);
    const side = (e) => [e.method, String(e.status), sizeCell(e.size), digest(e.sha256), url(e.url, e.ordinal)];
    const section = (id, title, rows, columns) =>
      h('section', { id }, h('h2', null, `${title} (${rows.length})`), rows.length ? table(columns, rows) : h('p', { class: 'muted' }, 'none'));
    const both = (a, b, fmt = String) => (a === b ? fmt(a) : h('span', null, fmt(a), ' → ', fmt(b)));
    // Packages lead (as in `btrfly diff`), a version fetched from other URLs with them; metadata is counted; the URL sections list the other URLs.
    const other = (list) => list.filter((e) => e.class === 'other');
    const [added, removed, changed] = [other(d.added), other(d.removed), other(d.changed)];
    const versionText = (p) =>
      p.change === 'added' ? p.to : p.change === 'removed' ? p.from : p.change === 'source' ? `${p.to} (other source)` : p.from === p.to ? `${p.to} (other bytes)` : `${p.from} → ${p.to}`;
    const sources = (u) => (u.from.join(' ') === u.to.join(' ') ? u.to.join(', ') : `${u.from.join(', ')} → ${u.to.join(', ')}`);
    const version = (p) => (p.urls ? h('div', null, h('div', null, versionText(p)), h('div', { class: 'source' }, sources(p.urls))) : versionText(p));
    const m = d.metadata;
    const packages = d.packages.length || m.refreshed + m.new + m.gone || added.length + removed.length + changed.length < d.added.length + d.removed.length + d.changed.length
      ? [
          section('packages', 'Packages', d.packages.map((p) => [p.change, h('code', null, p.name), version(p), p.ecosystem]), ['Change', 'Package', 'Version', 'Ecosystem']),
          h('p', { id: 'metadata' }, `Metadata: ${m.refreshed} refreshed, ${m.new} new, ${m.gone} gone`),
        ]
      : [];
    return [
      h('h1', null, h('span', { class: 'muted' }, 'Diff '), d.from, ' → ', d.to),
      h('p', { class: 'meta' }, `${added.length} added, ${removed.length} removed, ${changed.length} changed, ${d.unchanged} unchanged`),
      ...packages,
      section('added', 'Added', added.map(side), ['Method', '>Status', '>Size', 'SHA-256', 'URL']),
      section('removed', 'Removed', removed.map(side), ['Method', '>Status', '>Size', 'SHA-256', 'URL']),
      section(
        'changed',
        'Changed',
        changed.map((c) => [
          c.method,
          c.headers
            ? h('div', null, both(c.from.status, c.to.status), h('div', { class: 'source' }, c.headers.map((x) => `${x.name}: ${x.from ?? '(none)'} → ${x.to ?? '(none)'}`).join('; ')))
            : both(c.from.status, c.to.status),
          both(c.from.size, c.to.size, size),
          h('div', { class: 'fromto' }, h('div', null, digest(c.from.sha256)), h('div', null, h('span', { class: 'arrow' }, '→ '), digest(c.to.sha256))),
          url(c.url, c.ordinal),
        ]),
        ['Method', '>Status', '>Size', 'SHA-256', 'URL'],
      ),
    ];
  }

  async function sessionsView() {
    const { sessions } = await api('/v1/status');
    const body = sessions.length
      ? table(
          ['Mode', 'Tag', 'Clients', 'Since', '>Requests', '>Bytes', '>Hits', '>Misses', '>Recorded'],
          sessions.map((s) => [
            h('span', { class: `mode ${s.mode}` }, s.mode),
            link(`#/tag/${enc(s.tag)}`, s.tag),
            s.clients.join(', '),
            when(s.since),
            String(s.stats.requests),
            sizeCell(s.stats.bytes),
            String(s.stats.hits),
            String(s.stats.misses),
            String(s.stats.recorded),
          ]),
          { id: 'sessions' },
        )
      : h('p', null, 'No live session.');
    refreshTimer = setTimeout(route, REFRESH_MS);
    return [h('h1', null, 'Live sessions'), body, h('p', { class: 'muted' }, `updated ${new Date().toLocaleTimeString()}, every ${REFRESH_MS / 1000} s`)];
  }

  async function storageView() {
    const s = await api('/v1/storage');
    return [
      h('h1', null, 'Storage'),
      h(
        'dl',
        { id: 'storage' },
        h('dt', null, 'Archive on disk'),
        h('dd', null, sizeCell(s.objects.bytes), ` in ${s.objects.files} files`),
        h('dt', null, 'Disk'),
        h('dd', null, `${size(s.disk.free)} free of ${size(s.disk.size)}`),
      ),
      h('h2', null, 'By tag'),
      h('p', { class: 'muted' }, 'Bytes on disk of everything a tag reaches, its whole history; a body shared by tags counts for each.'),
      table(['Tag', '>Stored'], s.tags.map((t) => [link(`#/tag/${enc(t.tag)}`, t.tag), t.error ? h('span', { class: 'error' }, `cannot be read: ${t.error}`) : sizeCell(t.storedSize)]), { id: 'storage-tags' }),
    ];
  }

  const routes = [
    [/^#\/tags$/, 'tags', () => tagsView()],
    [/^#\/tag\/([^/]+)$/, 'tags', (tag) => tagView(tag)],
    [/^#\/recording\/([^/]+)$/, 'tags', (spec) => recordingView(spec)],
    [/^#\/diff\/([^/]+)\/([^/]+)$/, 'tags', (from, to) => diffView(from, to)],
    [/^#\/sessions$/, 'sessions', () => sessionsView()],
    [/^#\/storage$/, 'storage', () => storageView()],
  ];

  async function route() {
    clearTimeout(refreshTimer);
    if (!token()) return showLogin();
    const hash = location.hash || '#/tags';
    const found = routes.find(([re]) => re.test(hash));
    if (!found) {
      location.hash = '#/tags';
      return;
    }
    const [re, nav, view] = found;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === nav);
    try {
      // A hand-typed or cut-off link may hold a broken escape (%E0): say so instead of throwing here.
      const args = re.exec(hash).slice(1).map((a) => {
        try {
          return decodeURIComponent(a);
        } catch {
          throw new Error(`the address ${hash} holds a broken %-escape: follow a link of this page instead`);
        }
      });
      const nodes = await view(...args);
      if (location.hash === hash || (!location.hash && hash === '#/tags')) show(...nodes);
    } catch (e) {
      if (token()) show(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }

  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(refreshTimer);
    showLogin();
  });
  window.addEventListener('hashchange', () => token() && route());
  if (token()) start();
  else showLogin();
})();
