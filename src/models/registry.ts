// model_type → model family. Adding a family is one file plus one line here.
import { fail } from '../core/errors.ts';
import type { ModelConfig } from '../io/config.ts';
import type { ModelFamily } from './common.ts';
import { deepseekV2, deepseekV3 } from './deepseek-v3.ts';
import { gptOss } from './gpt-oss.ts';
import { granitemoe } from './granitemoe.ts';
import { mixtral } from './mixtral.ts';
import { olmoe } from './olmoe.ts';
import { qwen2Moe } from './qwen2-moe.ts';
import { qwen3Moe } from './qwen3-moe.ts';
import type { ArchitectureSpec } from './spec.ts';

const FAMILIES: ModelFamily[] = [mixtral, qwen2Moe, qwen3Moe, olmoe, deepseekV3, deepseekV2, gptOss, granitemoe];

export const SUPPORTED_MODEL_TYPES = FAMILIES.map((f) => f.modelType);

export function architectureOf(config: ModelConfig): ArchitectureSpec {
  const modelType = config.has('model_type') ? config.string('model_type') : undefined;
  if (modelType === undefined) fail('format', `${config.path}: missing "model_type"; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  const family = FAMILIES.find((f) => f.modelType === modelType);
  if (!family) fail('unsupported', `${config.path}: model_type "${modelType}" is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  return family.toSpec(config);
}
