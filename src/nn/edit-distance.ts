/**
 * Edit distance and "did you mean" suggestions for unknown names (layer options, model names,
 * training settings). It sits in nn, the lowest layer that names things a user types, so that
 * nn, attention, models and train share one implementation.
 */

/** Levenshtein distance: insertions, deletions and substitutions, each costing 1. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(prev[j] + 1, next[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = next;
  }
  return prev[b.length];
}

/**
 * Up to `max` (default 3) names within a small edit distance of `query` — at most
 * max(2, ⌊|query|/3⌋) — nearest first, ties alphabetical. Case, '-' and '_' are ignored, so
 * `num_heads` finds `numHeads`.
 */
export function nearestNames(query: string, names: readonly string[], max = 3): string[] {
  const fold = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const q = fold(query);
  const limit = Math.max(2, Math.floor(q.length / 3));
  return names
    .map((name) => ({ name, d: editDistance(q, fold(name)) }))
    .filter((m) => m.d <= limit)
    .sort((a, b) => a.d - b.d || a.name.localeCompare(b.name))
    .slice(0, max)
    .map((m) => m.name);
}
