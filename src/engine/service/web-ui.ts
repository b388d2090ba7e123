import * as path from 'node:path';
import express from 'express';
import { formatSize } from '../../format/size';

/** The UI's static files: `web/` at the package root (beside `dist/`). */
export const WEB_DIR = path.join(__dirname, '..', '..', '..', 'web');

/**
 * The web UI: static HTML, CSS and one script from `web/`, served without a token (they
 * hold no data). The page asks for a token, keeps it in sessionStorage and sends it as a
 * bearer token to the same API the CLI uses, so the UI can see exactly what the token may.
 * No cookie is involved, so another site cannot make the browser call the API (no CSRF).
 * The content security policy allows only this origin's script and style, and no inline
 * script, so a URL recorded in the archive cannot become code even if it slipped into markup.
 */
export function webUi(): express.Router {
  const router = express.Router();
  router.use((_req, res, next) => {
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    // frame-ancestors for browsers that predate it: no other site may frame the UI (clickjacking).
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    next();
  });
  router.get('/', (_req, res) => res.redirect(302, '/ui/'));
  // Browsers ask for it on their own, without the token: answer instead of a 401.
  router.get('/favicon.ico', (_req, res) => res.status(204).end());
  // The UI prints sizes exactly as the CLI does: the same function, sent as source (it is
  // pure and self-contained, so its compiled text runs as it is in the browser).
  const shared = `'use strict';\nconst formatSize = ${formatSize.toString()};\n`;
  router.get('/ui/shared.js', (_req, res) => res.type('text/javascript').send(shared));
  router.use('/ui', express.static(WEB_DIR, { index: 'index.html', maxAge: 0 }), (_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  return router;
}
