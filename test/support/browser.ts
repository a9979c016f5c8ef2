/**
 * Headless Chromium for page tests: Debian's `chromium` (scripts/setup.sh installs it) driven by
 * playwright-core, with a fresh profile per launch and no network services. Opens a file:// page
 * and reports its console errors, failed requests, images and charts.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.VICINITY_CHROMIUM ?? '/usr/bin/chromium';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** What a page showed. */
export interface PageCheck {
  consoleErrors: string[];
  failedRequests: string[];
  /** Every <img>: its src (shortened), loaded, natural width. */
  images: { src: string; complete: boolean; width: number }[];
  /** Every .chart: its name, the SVG's rendered size and its count of drawn marks (paths, rects, text). */
  charts: { name: string; width: number; height: number; marks: number }[];
  /** Requests that left file:// (a self-contained page makes none). */
  network: string[];
}

/** Launches Chromium with a fresh --user-data-dir (a persistent context on a new profile); close() removes the profile. */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: run scripts/setup.sh (it installs Debian's chromium) or set VICINITY_CHROMIUM`);
  }
  const profile = mkdtempSync(path.join(os.tmpdir(), 'vicinity-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
  return {
    context,
    close: async () => {
      await context.close();
      // Chromium's helper processes can still be flushing the profile for a moment after close
      rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}

/** Opens `file` and collects the checks; saves a full-page screenshot to `screenshot`. */
export async function checkPage(context: BrowserContext, file: string, screenshot: string): Promise<PageCheck> {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1200, height: 900 });
  const check: PageCheck = { consoleErrors: [], failedRequests: [], images: [], charts: [], network: [] };
  page.on('console', (m) => { if (m.type() === 'error') check.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => check.consoleErrors.push(String(e)));
  page.on('requestfailed', (r) => check.failedRequests.push(r.url()));
  page.on('request', (r) => { if (!/^(file|data):/.test(r.url())) check.network.push(r.url()); });
  await page.goto(`file://${path.resolve(file)}`, { waitUntil: 'load' });
  check.images = await page.$$eval('img', (els) => els.map((e) => {
    const img = e as unknown as { complete: boolean; naturalWidth: number; getAttribute(name: string): string | null };
    return { src: img.getAttribute('src')!.slice(0, 60), complete: img.complete, width: img.naturalWidth };
  }));
  check.charts = await page.$$eval('.chart', (els) => els.map((e) => {
    const svg = e.querySelector('svg');
    const box = svg?.getBoundingClientRect();
    return {
      name: e.getAttribute('data-chart') ?? '', width: box?.width ?? 0, height: box?.height ?? 0,
      marks: svg ? svg.querySelectorAll('path, rect, text').length : 0,
    };
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.close();
  return check;
}
