/**
 * The one size formatter of btrfly: `312 B`, `1.5 KiB`, `27 MiB`, `-2.0 KiB`. One decimal below
 * 10 of a unit, whole numbers above, binary units. The web UI embeds this function's source
 * in its page script (`src/engine/service/web-ui.ts`), so it must stay self-contained: no imports, no
 * closure over module state.
 */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(bytes);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const text = u === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
  return bytes < 0 ? `-${text}` : text;
}
