/** The HTML shell of explain's and report's pages: self-contained (inline CSS, no network), escaped text. */

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.meta { color: #555; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figure img { display: block; image-rendering: pixelated; border: 1px solid #ccc; }
figcaption { font-size: 12px; color: #444; max-width: 260px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.chart svg { max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }`;

/** A complete HTML document around `body`. */
export function pageShell(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>${body}
</body></html>
`;
}
