/**
 * claimRunDirectory: one run per directory (a lock with the pid; a dead owner's lock taken over),
 * stale temp files of dead writers removed, an earlier run refused unless resumed or overwritten.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { fileWriteError, writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { LOCK_FILE, RunDirectoryError, claimRunDirectory, processAlive } from '../../src/train/run-directory.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'vicinity-rundir-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

/** A pid that is not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(processAlive(child.pid!), false);
  return child.pid!;
}

const fresh = (name: string) => {
  const dir = path.join(root, name);
  rmSync(dir, { recursive: true, force: true });
  return mkdtempSync(`${dir}-`);
};
const options = (log: string[] = []) => ({ resume: false, overwrite: false, log: (l: string) => log.push(l) });

test('the lock holds the pid; a second claim is refused while the first holds it; release frees it', async () => {
  const dir = fresh('lock');
  const lock = await claimRunDirectory(dir, options());
  assert.equal(readFileSync(path.join(dir, LOCK_FILE), 'utf8'), `${process.pid}\n`);
  await assert.rejects(claimRunDirectory(dir, options()), (e: Error) => e instanceof RunDirectoryError &&
    e.message === `the run directory ${dir} is in use by process ${process.pid} (lock file ${path.join(dir, LOCK_FILE)}); ` +
      'wait for that run to end, or write to another directory with --out');
  await lock.release();
  assert.ok(!existsSync(path.join(dir, LOCK_FILE)));
  await (await claimRunDirectory(dir, options())).release();
});

test("a dead process's lock is taken over, with a note; a live process's is refused", async () => {
  const dir = fresh('stale-lock');
  const dead = await deadPid();
  writeFileSync(path.join(dir, LOCK_FILE), `${dead}\n`);
  const log: string[] = [];
  const lock = await claimRunDirectory(dir, options(log));
  assert.deepEqual(log, [`note: taking over the lock of ${dir} from process ${dead}, which is no longer running`]);
  await lock.release();
  writeFileSync(path.join(dir, LOCK_FILE), `${process.ppid}\n`);
  await assert.rejects(claimRunDirectory(dir, options()), new RegExp(`in use by process ${process.ppid}`));
});

test('temp files of dead writers are removed at start; those of live ones stay', async () => {
  const dir = fresh('temps');
  const dead = await deadPid();
  const staleNames = [`.last.state.safetensors.${dead}.0a1b2c3d4e5f.tmp`, `.best.safetensors.${dead}.ffffffffffff.tmp`];
  const liveName = `.last.safetensors.${process.ppid}.0123456789ab.tmp`;
  for (const name of [...staleNames, liveName, 'notes.tmp']) writeFileSync(path.join(dir, name), 'x');
  const log: string[] = [];
  await (await claimRunDirectory(dir, options(log))).release();
  assert.deepEqual(readdirSync(dir).sort(), [liveName, 'notes.tmp'].sort());
  assert.deepEqual(log, [`note: removed 2 temporary file(s) left in ${dir} by interrupted writers`]);
});

test('an earlier run is refused without resume or overwrite; overwrite deletes its files', async () => {
  const dir = fresh('earlier');
  for (const name of ['metrics.jsonl', 'best.safetensors', 'keep.txt']) writeFileSync(path.join(dir, name), 'x');
  await assert.rejects(claimRunDirectory(dir, options()), (e: Error) => e instanceof RunDirectoryError &&
    e.message === `${dir} already holds a run (best.safetensors, metrics.jsonl); continue it with --resume ${dir}, ` +
      'replace it with --overwrite, or choose another directory with --out');
  assert.ok(!existsSync(path.join(dir, LOCK_FILE)), 'a refused claim left its lock');
  await (await claimRunDirectory(dir, { ...options(), resume: true })).release();
  const log: string[] = [];
  await (await claimRunDirectory(dir, { ...options(log), overwrite: true })).release();
  assert.deepEqual(readdirSync(dir), ['keep.txt']);
  assert.deepEqual(log, [`note: --overwrite: removed the earlier run's best.safetensors, metrics.jsonl from ${dir}`]);
});

test('write errors name the file and the cause: ENOSPC, a read-only directory, a missing one', async () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: raw`), { code });
  assert.equal(fileWriteError(errno('ENOSPC'), 'runs/a/last.safetensors').message,
    'cannot write runs/a/last.safetensors: no space left on the device (ENOSPC); free some space or write elsewhere');
  assert.equal(fileWriteError(errno('EROFS'), 'runs/a/x').message, 'cannot write runs/a/x: its directory is not writable (EROFS); choose a writable directory');
  assert.equal((fileWriteError(errno('EACCES'), 'x') as NodeJS.ErrnoException).code, 'EACCES');
  const missing = path.join(root, 'no', 'such', 'dir', 'w.safetensors');
  await assert.rejects(writeSafetensors(missing, new Map()), {
    message: `cannot write ${missing}: its directory ${path.dirname(missing)} does not exist (ENOENT)`,
  });
});
