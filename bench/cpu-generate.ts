// Generation speed of the embedded default model on the CPU backend: prefill tokens/s and decode tokens/s.
// Run: node --import tsx bench/cpu-generate.ts [--tokens 128]
import { generate } from '../src/generate/generate.ts';
import { loadTokenizer } from '../src/io/tokenizer.ts';
import { DEFAULT_MODEL_DIR, loadModel } from '../src/models/load.ts';

const flag = process.argv.indexOf('--tokens');
const newTokens = flag > 0 ? Number(process.argv[flag + 1]) : 128;
const model = await loadModel(DEFAULT_MODEL_DIR);
const tokenizer = loadTokenizer(DEFAULT_MODEL_DIR);
const prompt = tokenizer.encode('It is a truth universally acknowledged that the Congress of the United States, in its wisdom, ' +
  'has always given careful attention to the state of the Union and to the condition of the people.');

for (let round = 0; round < 3; round++) {
  const t0 = performance.now();
  const logits = await model.forward(Int32Array.from(prompt), model.newCache(), { lastTokens: 1 });
  await logits.read();
  const prefillMs = performance.now() - t0;
  let first = 0;
  const t1 = performance.now();
  const { tokens } = await generate(model, prompt, {
    maxNewTokens: newTokens, temperature: 0, stopTokenIds: [], onToken: () => { if (!first) first = performance.now(); },
  });
  const decodeMs = performance.now() - first;
  console.log(`round ${round}: prefill ${prompt.length} tokens ${prefillMs.toFixed(1)} ms (${(prompt.length / prefillMs * 1e3).toFixed(0)} tok/s); ` +
    `decode ${tokens.length - 1} tokens ${decodeMs.toFixed(0)} ms (${((tokens.length - 1) / decodeMs * 1e3).toFixed(1)} tok/s); total ${(performance.now() - t1).toFixed(0)} ms`);
}
