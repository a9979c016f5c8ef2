/** Helpers for the distributed tests: free ports and child ranks on 127.0.0.1. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from start to exit. */
  ms: number;
}

/** Runs `node args…` with extra environment; `child` lets the caller kill it. */
export function runNode(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Ran> } {
  const started = Date.now();
  const child = spawn(process.execPath, args, { env: { ...process.env, OMP_NUM_THREADS: '1', VICINITY_NUM_THREADS: '1', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  const done = new Promise<Ran>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
  return { child, done };
}

/** Env for rank `rank` of a `worldSize` group at 127.0.0.1:port. */
export function rankEnv(rank: number, worldSize: number, port: number): Record<string, string> {
  return {
    RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(worldSize),
    MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
  };
}
