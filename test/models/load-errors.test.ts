// Bad model directories give one clear MoetsError naming the problem: missing or negative sizes, unsupported
// model_type, a missing tensor, a tensor of the wrong shape, a missing directory.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MoetsError } from '../../src/core/errors.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/models/load.ts';
import { TINY_CONFIGS, writeTinyCheckpoint } from '../util/tiny-checkpoint.ts';

async function loadError(dir: string): Promise<MoetsError> {
  try {
    await loadModel(dir);
  } catch (e) {
    assert.ok(e instanceof MoetsError, `expected a MoetsError, got ${(e as Error).stack}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    return e;
  }
  return assert.fail('loading succeeded');
}

function withConfig(change: (c: Record<string, unknown>) => void): string {
  const dir = writeTinyCheckpoint(TINY_CONFIGS['mixtral']!, 'hub', 1);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  change(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

describe('loading bad model directories', () => {
  it('a negative size', async () => {
    const e = await loadError(withConfig((c) => { c['hidden_size'] = -4; }));
    assert.match(e.message, /"hidden_size" must be an integer ≥ 1, got -4/);
  });

  it('a missing size', async () => {
    const e = await loadError(withConfig((c) => { delete c['num_hidden_layers']; }));
    assert.match(e.message, /missing "num_hidden_layers"/);
  });

  it('top-k larger than the expert count', async () => {
    const e = await loadError(withConfig((c) => { c['num_experts_per_tok'] = 9; }));
    assert.match(e.message, /num_experts_per_tok \(9\) is larger than the number of experts \(6\)/);
  });

  it('an unsupported model_type names the supported ones', async () => {
    const e = await loadError(withConfig((c) => { c['model_type'] = 'llama'; }));
    assert.equal(e.kind, 'unsupported');
    assert.match(e.message, /model_type "llama" is not supported; supported: mixtral, qwen2_moe, qwen3_moe, olmoe/);
  });

  it('a missing tensor is named', async () => {
    const dir = writeTinyCheckpoint(TINY_CONFIGS['olmoe']!, 'fused', 1);
    const file = SafetensorsFile.open(join(dir, 'model.safetensors'));
    const kept = [...file.tensors.values()].filter((t) => t.name !== 'model.layers.1.self_attn.k_norm.weight')
      .map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: file.readBytes(t.name) }));
    file.close();
    writeSafetensors(join(dir, 'model.safetensors'), kept);
    const e = await loadError(dir);
    assert.match(e.message, /missing tensor model\.layers\.1\.self_attn\.k_norm\.weight/);
  });

  it('a tensor whose shape disagrees with config.json', async () => {
    const e = await loadError(withConfig((c) => { c['intermediate_size'] = 25; }));
    assert.match(e.message, /has shape \[24, 32\] but config\.json implies \[25, 32\]/);
  });

  it('a directory that does not exist, and one without config.json', async () => {
    assert.match((await loadError('/nonexistent/model')).message, /does not exist/);
    const dir = writeTinyCheckpoint(TINY_CONFIGS['mixtral']!, 'hub', 1);
    rmSync(join(dir, 'config.json'));
    assert.match((await loadError(dir)).message, /config\.json: not found/);
  });
});
