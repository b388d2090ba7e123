/**
 * A line chart as a standalone SVG, written by the bench itself (no dependency): x is the
 * body size on a log scale, y the throughput in MiB/s, one line a series.
 */

export interface Series {
  name: string;
  color: string;
  /** [body bytes, MiB/s], in increasing size. */
  points: Array<[number, number]>;
}

const W = 640;
const H = 360;
const M = { left: 64, right: 150, top: 36, bottom: 48 };

function sizeLabel(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${bytes / 1024 ** 3} GiB`;
  if (bytes >= 1024 ** 2) return `${bytes / 1024 ** 2} MiB`;
  return `${bytes / 1024} KiB`;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** The SVG text of a throughput-vs-size chart. */
export function throughputChart(title: string, series: readonly Series[]): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [x0, x1] = [Math.log2(Math.min(...xs)), Math.log2(Math.max(...xs))];
  const yMax = niceMax(Math.max(...ys));
  const px = (b: number): number => M.left + ((Math.log2(b) - x0) / Math.max(1, x1 - x0)) * (W - M.left - M.right);
  const py = (v: number): number => H - M.bottom - (v / yMax) * (H - M.top - M.bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - M.right / 2 + M.left / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (yMax / 5) * i;
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${py(v) + 4}" text-anchor="end">${v.toFixed(0)}</text>`);
  }
  for (const b of [...new Set(xs)].sort((a, c) => a - c)) {
    out.push(`<line x1="${px(b)}" x2="${px(b)}" y1="${M.top}" y2="${H - M.bottom}" stroke="#eee"/>`);
    out.push(`<text x="${px(b)}" y="${H - M.bottom + 16}" text-anchor="middle">${sizeLabel(b)}</text>`);
  }
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 10}" text-anchor="middle">body size (log scale)</text>`);
  out.push(`<text x="16" y="${(M.top + H - M.bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(M.top + H - M.bottom) / 2})">MiB/s (one curl download)</text>`);
  series.forEach((s, i) => {
    const pts = s.points.map(([b, v]) => `${px(b).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [b, v] of s.points) out.push(`<circle cx="${px(b).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3" fill="${s.color}"/>`);
    const ly = M.top + 10 + i * 20;
    out.push(`<line x1="${W - M.right + 12}" x2="${W - M.right + 32}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${W - M.right + 38}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function niceMax(v: number): number {
  const step = 10 ** Math.floor(Math.log10(Math.max(v, 1)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= v) return m * step;
  return 10 * step;
}
