/**
 * A run directory's safety at the start of a run: it is locked for this process, stale temporary
 * files of dead writers are removed, and an earlier run in it is never replaced silently.
 *
 *   lock        `<run>/.vicinity.lock` holds the owning process's pid (created with O_EXCL). A
 *               lock whose pid is no longer alive (a SIGKILLed or crashed run) is taken over, and
 *               the caller is told; a live one refuses the run with an error naming the pid. The
 *               lock goes when the run ends (release(), or at process exit).
 *   temp files  writeSafetensors writes `.<name>.<pid>.<hex>.tmp` then renames it; a writer killed
 *               in between leaves the temp file (up to a state file's size). Those of dead pids are
 *               removed once the lock is held (no live writer can own them then).
 *   earlier run a directory that already holds a run's files is refused unless the run resumes
 *               it (`--resume`) or replaces it (`--overwrite`, which deletes the old run's files
 *               first, so no stale best.safetensors survives beside the new run's).
 */
import { open, readdir, readFile, unlink } from 'node:fs/promises';
import { unlinkSync } from 'node:fs';
import path from 'node:path';
import { fileWriteError } from '../checkpoint/safetensors.js';

export const LOCK_FILE = '.vicinity.lock';

/** The files a run writes; any of them marks the directory as holding a run. */
export const RUN_FILES = [
  'last.state.safetensors', 'last.safetensors', 'best.safetensors', 'ema.safetensors', 'metrics.jsonl', 'summary.csv', 'config.json',
] as const;

/** writeSafetensors' temporary names: `.<name>.<pid>.<12 hex>.tmp`. */
const TEMP_FILE = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/;

/** A run directory that cannot be used as asked; the message names the directory and the way out. */
export class RunDirectoryError extends Error {
  constructor(readonly dir: string, message: string) {
    super(message);
    this.name = 'RunDirectoryError';
  }
}

export interface ClaimOptions {
  /** The run continues the directory's run (its files are expected). */
  resume: boolean;
  /** Replace an earlier run: its files are deleted first. */
  overwrite: boolean;
  /** Notes for the user (a taken-over lock, removed temp files, a replaced run). */
  log: (line: string) => void;
}

/** A claimed run directory; release() removes the lock. */
export interface RunDirectoryLock {
  dir: string;
  release(): Promise<void>;
}

/** Whether process `pid` exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Locks `dir` (which must exist) for this process, removes dead writers' temp files, and checks
 * for an earlier run. Errors: RunDirectoryError when another live process holds the lock, or when
 * the directory holds a run and neither `resume` nor `overwrite` is set.
 */
export async function claimRunDirectory(dir: string, options: ClaimOptions): Promise<RunDirectoryLock> {
  const lock = await acquireLock(dir, options.log);
  try {
    await removeStaleTempFiles(dir, options.log);
    if (!options.resume) await checkNoEarlierRun(dir, options);
  } catch (e) {
    await lock.release();
    throw e;
  }
  return lock;
}

async function acquireLock(dir: string, log: (line: string) => void): Promise<RunDirectoryLock> {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx');
      try { await handle.writeFile(`${process.pid}\n`); } finally { await handle.close(); }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new RunDirectoryError(dir, `cannot use the run directory ${dir}: ${fileWriteError(e, file).message}`);
      }
    }
    const owner = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (processAlive(owner) || attempt > 0) {
      throw new RunDirectoryError(dir, `the run directory ${dir} is in use by process ${owner} (lock file ${file}); ` +
        'wait for that run to end, or write to another directory with --out');
    }
    log(`note: taking over the lock of ${dir} from process ${Number.isNaN(owner) ? '(unreadable)' : owner}, which is no longer running`);
    await unlink(file).catch(() => undefined);
  }
  // A process that exits without release() (a second Ctrl-C, process.exit) must not leave its lock.
  const onExit = () => { try { unlinkSync(file); } catch { /* already gone */ } };
  process.on('exit', onExit);
  return {
    dir,
    async release() {
      process.off('exit', onExit);
      const owner = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
      if (owner === process.pid) await unlink(file).catch(() => undefined);
    },
  };
}

/** Removes `.<name>.<pid>.<hex>.tmp` files whose writer is no longer alive. */
async function removeStaleTempFiles(dir: string, log: (line: string) => void): Promise<void> {
  const stale = (await readdir(dir)).filter((name) => {
    const m = TEMP_FILE.exec(name);
    return m !== null && Number(m[1]) !== process.pid && !processAlive(Number(m[1]));
  });
  for (const name of stale) await unlink(path.join(dir, name)).catch(() => undefined);
  if (stale.length) log(`note: removed ${stale.length} temporary file(s) left in ${dir} by interrupted writers`);
}

async function checkNoEarlierRun(dir: string, options: ClaimOptions): Promise<void> {
  const names = new Set(await readdir(dir));
  const found = RUN_FILES.filter((f) => names.has(f));
  if (found.length === 0) return;
  if (!options.overwrite) {
    throw new RunDirectoryError(dir, `${dir} already holds a run (${found.join(', ')}); continue it with --resume ${dir}, ` +
      'replace it with --overwrite, or choose another directory with --out');
  }
  for (const f of found) await unlink(path.join(dir, f));
  options.log(`note: --overwrite: removed the earlier run's ${found.join(', ')} from ${dir}`);
}
