import { existsSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpDir } from './tmp';

/**
 * The test side of `src/test-pause.ts`: a btrfly process started with {@link PausePoints.env}
 * stops at the named points; {@link PausePoints.reached} resolves (with its pid) when one has
 * got there, {@link PausePoints.release} lets it go on.
 */
export interface PausePoints {
  readonly dir: string;
  env(...points: string[]): NodeJS.ProcessEnv;
  reached(point: string, timeoutMs?: number): Promise<number>;
  release(point: string): void;
}

export function pausePoints(): PausePoints {
  const dir = tmpDir('btrfly-pause-');
  return {
    dir,
    env: (...points) => ({ BTRFLY_TEST_PAUSE_AT: points.join(','), BTRFLY_TEST_PAUSE_DIR: dir }),
    reached: (point, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const marker = join(dir, `${point}.reached`);
        const check = (): boolean => {
          if (!existsSync(marker)) return false;
          const pid = Number(readFileSync(marker, 'utf8'));
          if (!pid) return false; // written but not yet filled
          watcher.close();
          clearTimeout(timer);
          resolve(pid);
          return true;
        };
        const watcher = watch(dir, () => check());
        const timer = setTimeout(() => {
          watcher.close();
          reject(new Error(`no process reached pause point ${point} within ${timeoutMs} ms`));
        }, timeoutMs);
        check();
      }),
    release: (point) => writeFileSync(join(dir, `${point}.go`), ''),
  };
}
