/**
 * The CLI's first import (main.ts): environment settings checked before any module loads libtorch,
 * so a bad value ends every command, `--help` included, with one `vicinity:` line instead of the
 * stack trace of a failed import.
 */
import { threadsFromEnvironment } from '../native/thread-limit.js';

try {
  threadsFromEnvironment();
} catch (e) {
  process.stderr.write(`vicinity: ${(e as Error).message}\n`);
  process.exit(1);
}
