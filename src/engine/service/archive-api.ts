import { statfs } from 'node:fs/promises';
import express from 'express';
import { BtrflyError, isBtrflyError } from '../../errors';
import type { Archive } from '../../format/archive';
import { loadRecording, objectsDiskUsage, recordingSize, summarizeVisibleTags, tagLog } from '../../format/archive-report';
import { diffManifests } from '../../format/diff';
import { compareEntries } from '../../format/manifest';
import { parseTagSpec, validateTagName } from '../../format/names';
import { authorizeRead, mayRead, type TokenRecord } from './tokens';

/** One entry of `GET /v1/recording`: what `btrfly show` prints. */
export interface EntryView {
  method: string;
  url: string;
  ordinal: number;
  status: number;
  size: number;
  sha256: string;
  mimeType?: string;
}

/** `GET /v1/storage`: the archive's bytes on disk, what each visible tag reaches, the disk's free space. */
export interface StorageView {
  objects: { bytes: number; files: number };
  /** A tag that cannot be read has `error` (one line) instead of its size. */
  tags: ({ tag: string; storedSize: number } | { tag: string; error: string })[];
  disk: { size: number; free: number };
}

/**
 * The service's read-only views of the archive, for the web UI and scripts: tags, a tag's
 * history, a recording's entries, the diff of two recordings, storage. Each answers only
 * about tags the caller's token covers (`res.locals.token`, set by the service's auth step).
 * The data comes from the same functions as `btrfly tags/log/show/diff`.
 */
export function archiveApi(archive: Archive): express.Router {
  const router = express.Router();
  const tokenOf = (res: express.Response) => res.locals.token as TokenRecord;
  const answer = (fn: (req: express.Request, token: TokenRecord) => Promise<unknown>): express.RequestHandler => (req, res, next) => {
    fn(req, tokenOf(res)).then((v) => res.json(v), (e: unknown) => next(forCaller(e)));
  };

  // Tags are chosen by name before anything of them is read: another team's tag, broken or not,
  // never reaches this token's answer; a broken visible tag is listed with its error.
  router.get('/v1/tags', answer((_req, token) => summarizeVisibleTags(archive, (tag) => mayRead(token, tag))));

  router.get('/v1/log', answer(async (req, token) => {
    const tag = validateTagName(param(req, 'tag'));
    authorizeRead(token, tag);
    return tagLog(archive, tag);
  }));

  router.get('/v1/recording', answer(async (req, token) => {
    const spec = param(req, 'spec');
    authorizeRead(token, parseTagSpec(spec).tag);
    const { rec, label, date } = await loadRecording(archive, spec);
    const entries: EntryView[] = [...rec.manifest.entries].sort(compareEntries).map((e) => ({
      method: e.request.method,
      url: e.request.url,
      ordinal: e.ordinal,
      status: e.response.status,
      size: e.response.content.size,
      sha256: e.response.content.sha256,
      mimeType: e.response.content.mimeType,
    }));
    return { tag: rec.tag, commit: rec.commit, label, date: date.toISOString(), size: recordingSize(rec), entries };
  }));

  router.get('/v1/diff', answer(async (req, token) => {
    const from = param(req, 'from');
    const to = param(req, 'to');
    for (const spec of [from, to]) authorizeRead(token, parseTagSpec(spec).tag);
    const [a, b] = [await loadRecording(archive, from), await loadRecording(archive, to)];
    return { from: a.label, to: b.label, ...diffManifests(a.rec.manifest, b.rec.manifest) };
  }));

  router.get('/v1/storage', answer(async (_req, token): Promise<StorageView> => {
    const tags = (await summarizeVisibleTags(archive, (tag) => mayRead(token, tag))).map((t) => ('error' in t ? { tag: t.tag, error: t.error } : { tag: t.tag, storedSize: t.storedSize }));
    const fs = await statfs(archive.dir);
    return { objects: await objectsDiskUsage(archive), tags, disk: { size: fs.blocks * fs.bsize, free: fs.bavail * fs.bsize } };
  }));

  return router;
}

/**
 * The archive's own "not found" names its directory on the service host and a command that lists
 * the caller's local archive: the caller is told where its tags are listed instead.
 */
function forCaller(e: unknown): unknown {
  if (!isBtrflyError(e) || e.code !== 'TAG_NOT_FOUND') return e;
  const tag = String(e.data.tag);
  return new BtrflyError('TAG_NOT_FOUND', `tag "${tag}" not found on the service: GET /v1/tags (the web UI's Tags) lists the tags this token may read`, { data: { tag } });
}

function param(req: express.Request, name: string): string {
  const v = req.query[name];
  if (typeof v !== 'string' || v === '') throw new BtrflyError('USAGE', `the query parameter "${name}" is missing: e.g. ?${name}=team-a/app`);
  return v;
}
