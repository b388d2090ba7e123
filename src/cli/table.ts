/**
 * A plain-text table for listing commands: columns padded to their widest cell, two spaces
 * apart, numbers right-aligned when asked. No colours, no box drawing: greppable output.
 */
export function table(header: string[], rows: string[][], opts: { right?: number[] } = {}): string {
  const right = new Set(opts.right ?? []);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 && !right.has(i) ? c : right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
