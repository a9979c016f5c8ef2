/**
 * Errors raised by the data layer.
 *
 * One class, so that a caller (the CLI, a training loop) can tell "your dataset files are bad"
 * apart from a bug or a shape error in the model, and print the message as is: every message
 * names the file, what is wrong with it, and how to fix it.
 */

/**
 * A dataset file is missing, malformed or inconsistent with its partner file.
 *
 * `file` is the path (or the label a caller gave to in-memory bytes) that the problem was found
 * in; the message already includes it, the field is for programs that want to act on it.
 *
 * @example
 * try { await loadFashionMnist({ split: 'train', source: 'full' }); }
 * catch (e) { if (e instanceof DatasetError) console.error(e.message); else throw e; }
 */
export class DatasetError extends Error {
  readonly file: string;

  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatasetError';
    this.file = file;
  }
}
