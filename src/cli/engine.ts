// What the subcommands run, gathered in one module that each command imports only when its action starts
// (`await import('./engine.ts')`): loading the model code takes a quarter of a second, which --help and a
// mistyped flag should not pay.
export { generate } from '../generate/generate.ts';
export { StreamDecoder } from '../generate/stream-decoder.ts';
export { loadTokenizer } from '../io/tokenizer.ts';
export { formatInspect, inspectModel } from '../models/inspect.ts';
export { DEFAULT_MODEL_DIR, loadModel } from '../models/load.ts';
