/**
 * The directory holding vicinity's package.json, so that files shipped beside the code (the
 * bundled `data/` folder) can be found wherever the package is installed.
 *
 * Compiled code runs from `<root>/dist/src/package-root.js`, so the root is two levels up from
 * this file's directory. We derive it from `import.meta.url` rather than
 * `process.cwd()`, which is wherever the user happened to start node, and rather than a
 * walk up the tree looking for package.json, which could stop at the user's own project when
 * vicinity is installed under node_modules/.
 */
import { fileURLToPath } from 'node:url';

/** Absolute path of the package root, without a trailing separator. */
export const packageRoot: string = fileURLToPath(new URL('../../', import.meta.url)).replace(/[\\/]+$/, '');
