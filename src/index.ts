// The moets library API: load a Hugging Face MoE checkpoint, run it, generate text, inspect it, watch its routing.
export type { Backend, DeviceName, RouterSpec } from './backend/backend.ts';
export { getBackend, type DeviceChoice } from './backend/registry.ts';
export type { DType, FloatDType } from './core/dtype.ts';
export { MoetsError, type ErrorKind } from './core/errors.ts';
export { Tensor } from './core/tensor.ts';
export { Checkpoint } from './io/checkpoint.ts';
export { SafetensorsFile, writeSafetensors } from './io/safetensors.ts';
export { loadTokenizer, TextTokenizer } from './io/tokenizer.ts';
export * from './io/chat-template.ts';
export { generate, type GenerateOptions, type GenerateResult } from './generate/generate.ts';
export { StreamDecoder } from './generate/stream-decoder.ts';
export { DEFAULT_MODEL_DIR, loadModel, type LoadOptions } from './models/load.ts';
export { formatInspect, inspectModel, type InspectReport } from './models/inspect.ts';
export type { CausalLM, ModelCache } from './models/model.ts';
export { SUPPORTED_MODEL_TYPES } from './models/registry.ts';
export type { RoutingDecision, RoutingObserver } from './moe/observer.ts';
