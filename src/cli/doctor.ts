/**
 * `vicinity doctor`: what this installation runs on, and whether it works. Exits non-zero when
 * the addon cannot load, libtorch changed since the build, or a small computation is wrong.
 */
import path from 'node:path';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export async function doctor(options: { json?: boolean } = {}): Promise<number> {
  const checks: Check[] = [];
  const facts: Record<string, string | number | boolean> = { node: process.version, platform: `${process.platform}-${process.arch}` };
  let binding: typeof import('../native/binding.js');
  try {
    binding = await import('../native/binding.js');
  } catch (e) {
    checks.push({ name: 'addon', ok: false, detail: e instanceof Error ? e.message : String(e) });
    return report(facts, checks, options.json);
  }
  const { native, addonPath, packageRoot } = binding;
  const info = native.buildInfo();
  Object.assign(facts, {
    backend: `${info.backend}: ${info.torchLabel}`,
    libtorch: info.torchVersion,
    libtorchSource: info.torchSource,
    cxx11Abi: info.cxx11Abi,
    intraOpThreads: native.getNumThreads(),
    blasThreads: `${info.blasThreads} (${info.blasLibrary})`,
    ompWaitPolicy: `${process.env.OMP_WAIT_POLICY ?? '(unset)'}, GOMP_SPINCOUNT ${process.env.GOMP_SPINCOUNT ?? '(unset)'}`,
    cuda: info.cudaAvailable ? `yes, ${info.cudaDevices} device(s)` : 'no',
    addon: addonPath,
    addonCompiler: info.compiler,
    napiVersion: info.napiVersion,
  });
  checks.push({ name: 'addon', ok: true, detail: `loaded ${path.relative(packageRoot, addonPath)}` });
  checks.push(await libtorchUnchanged(info.torchVersion));
  checks.push(await computeCheck());
  checks.push({
    name: 'threads',
    ok: native.getNumThreads() >= 1,
    detail: `${native.getNumThreads()} intra-op thread(s); set VICINITY_NUM_THREADS to change`,
  });
  return report(facts, checks, options.json);
}

async function libtorchUnchanged(runtimeVersion: string): Promise<Check> {
  const built = (await import('../native/build-config.js')).buildConfig();
  if (!built) return { name: 'build config', ok: true, detail: 'no build record (prebuilt addon)' };
  const ok = built.version === runtimeVersion;
  return {
    name: 'build config',
    ok,
    detail: ok
      ? `built against ${built.label} (libtorch ${built.version}, ${built.source})${built.python ? `; its Python: ${built.python}` : ''}`
      : `built against ${built.version} but found ${runtimeVersion}; rebuild with \`npm run build:addon\``,
  };
}

async function computeCheck(): Promise<Check> {
  try {
    const { tensor } = await import('../tensor/creation.js');
    const { tidy } = await import('../tensor/scope.js');
    const value = tidy(() => {
      const a = tensor([[1, 2], [3, 4]], { requiresGrad: true });
      a.matmul(a).sum().backward();
      return (a.grad!.toArray() as number[][]).flat();
    });
    // d/da sum(a @ a) = 1ᵀ aᵀ + aᵀ 1: [[7, 11], [9, 13]] for this a.
    const ok = [7, 11, 9, 13].every((v, i) => value[i] === v);
    return { name: 'compute', ok, detail: ok ? 'matmul + backward correct' : `wrong gradient ${value}` };
  } catch (e) {
    return { name: 'compute', ok: false, detail: e instanceof Error ? e.message : String(e) };
  }
}

function report(facts: Record<string, unknown>, checks: Check[], json = false): number {
  const ok = checks.every((c) => c.ok);
  if (json) {
    console.log(JSON.stringify({ ok, facts, checks }, null, 2));
  } else {
    const width = Math.max(...Object.keys(facts).map((k) => k.length));
    for (const [k, v] of Object.entries(facts)) console.log(`${k.padEnd(width)}  ${v}`);
    console.log('');
    for (const c of checks) console.log(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`);
  }
  return ok ? 0 : 1;
}
