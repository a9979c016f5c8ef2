/**
 * Charts as static SVG: Vega-Lite specifications compiled to Vega and rendered headless in Node
 * (vega's View with renderer 'none' → toSVG(), no canvas, no browser), so pages embed finished
 * SVG and need neither network nor script to be viewed. Vega-Lite is the declarative grammar the
 * Python side knows as Altair; vega and vega-lite are maintained by the UW Interactive Data Lab.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Renders a Vega-Lite spec to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

type Row = Record<string, number | string>;

/** Lines of `series` (long format: x, value, series name) over `x`. */
export function lineChart(title: string, rows: Row[], o: { x: string; y: string; series: string; yTitle: string; xTitle?: string; logY?: boolean }): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 320, height: 200, data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: o.x, type: 'quantitative', title: o.xTitle ?? o.x, axis: { tickMinStep: 1 } },
      y: { field: o.y, type: 'quantitative', title: o.yTitle, scale: o.logY ? { type: 'log' } : { zero: false } },
      color: { field: o.series, type: 'nominal', title: null },
    },
  } as TopLevelSpec;
}

/** A confusion-matrix heat map: rows truth, columns prediction, cells counts. */
export function confusionChart(labels: string[], matrix: number[][]): TopLevelSpec {
  const values = matrix.flatMap((row, t) => row.map((count, p) => ({ truth: labels[t], predicted: labels[p], count })));
  const side = Math.max(200, Math.min(520, 32 * labels.length));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'confusion matrix (test set)', width: side, height: side, data: { values },
    encoding: {
      x: { field: 'predicted', type: 'nominal', sort: labels, title: 'predicted' },
      y: { field: 'truth', type: 'nominal', sort: labels, title: 'truth' },
    },
    layer: [
      { mark: 'rect', encoding: { color: { field: 'count', type: 'quantitative', scale: { scheme: 'blues' } } } },
      ...(labels.length <= 20 ? [{ mark: { type: 'text', fontSize: 9 }, encoding: { text: { field: 'count', type: 'quantitative' } } }] : []),
    ],
  } as TopLevelSpec;
}

/** Horizontal bars of a percentage per category. */
export function barChart(title: string, rows: { name: string; value: number }[], valueTitle: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 320, height: Math.max(120, 16 * rows.length), data: { values: rows },
    mark: 'bar',
    encoding: {
      y: { field: 'name', type: 'nominal', sort: null, title: null },
      x: { field: 'value', type: 'quantitative', title: valueTitle },
    },
  } as TopLevelSpec;
}
