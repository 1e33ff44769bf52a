// `moets generate [MODEL] --prompt TEXT | --ids 3,1,4`: continue a prompt. Text streams to stdout as it is
// made (the prompt first, then each new piece); with --format ids the new token ids are printed comma-separated
// on one line. With --chat the prompt is one user message, rendered with the model's chat template, and only the
// reply prints (chat.ts). Every flag is checked before the model is loaded, so a typo costs no waiting.
import { Command, Option } from 'commander';
import type { StreamDecoder } from '../generate/stream-decoder.ts';
import type { TextTokenizer } from '../io/tokenizer.ts';
import { formatRoutingStatsTable, RoutingStats, routingStatsJson } from '../moe/routing-stats.ts';
import { runChatTurn } from './chat.ts';
import { usageError } from './errors.ts';
import {
  deviceOption, modelArgument, parseTokenIds, resolveDevice, resolveModelArgument, samplingOptions, systemOption,
} from './options.ts';
import { checkOutputFile, writeFileAtomically } from './output-file.ts';

interface GenerateFlags {
  prompt?: string;
  ids?: Int32Array;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
  format?: 'text' | 'ids';
  device?: string;
  routingStats?: boolean;
  routingStatsJson?: string;
  chat?: true;
  system?: string;
}

export function generateCommand(): Command {
  const command = new Command('generate')
    .description('continue a prompt with the model, streaming the new text (or printing the new token ids)')
    .addArgument(modelArgument())
    .option('--prompt <text>', 'the text to continue (needs the model\'s tokenizer.json)')
    .option('--ids <ids>', 'the prompt as token ids instead of text, comma-separated, e.g. 3,1,4', parseTokenIds)
    .option('--chat', 'the prompt (--prompt, or stdin) is a user message: render it with the model\'s chat template '
      + 'and print only the reply')
    .addOption(systemOption());
  for (const option of samplingOptions()) command.addOption(option);
  return command
    .addOption(new Option('--format <format>', 'print the text, or the new token ids comma-separated on one line '
      + '(default: text with --prompt, ids with --ids)').choices(['text', 'ids']))
    .addOption(deviceOption())
    .option('--routing-stats', 'after generating, print per-layer expert-load statistics to stderr')
    .option('--routing-stats-json <file>', 'after generating, write all routing statistics (per layer, per expert, '
      + 'expert pairs) as JSON to FILE')
    .addHelpText('after', `
Pass exactly one of --prompt and --ids (with --chat, the message may come on stdin instead).

Examples:
  $ moets generate --prompt "It was a dark and stormy night"
  $ moets generate path/to/model --prompt "The president said" --max-new-tokens 100 --seed 7
  $ moets generate path/to/model --ids 3,1,4 --max-new-tokens 8 --temperature 0 --format ids
  $ moets generate path/to/model --prompt "Hello" --routing-stats --routing-stats-json routing.json
  $ echo "What is a mixture of experts?" | moets generate path/to/instruct-model --chat`)
    .action(runGenerate);
}

async function runGenerate(model: string | undefined, flags: GenerateFlags): Promise<void> {
  if (flags.chat) {
    if (flags.routingStats || flags.routingStatsJson !== undefined) {
      usageError('--routing-stats and --routing-stats-json do not work with --chat yet; run them with --prompt alone');
    }
    return runChatTurn(model, flags);
  }
  if (flags.system !== undefined) usageError('--system needs --chat; add --chat to render the prompt as a chat turn');
  if ((flags.prompt === undefined) === (flags.ids === undefined)) {
    usageError(`${flags.prompt === undefined ? 'neither --prompt nor --ids was given' : '--prompt and --ids were both given'}`
      + '; pass exactly one: --prompt "some text" or --ids 3,1,4');
  }
  const format = flags.format ?? (flags.prompt !== undefined ? 'text' : 'ids');
  const device = resolveDevice(flags.device);
  if (flags.routingStatsJson !== undefined) checkOutputFile('--routing-stats-json', flags.routingStatsJson, 'routing.json');
  const engine = await import('./engine.ts');
  const dir = await resolveModelArgument(model);
  const tokenizer = format === 'text' || flags.prompt !== undefined ? engine.loadTokenizer(dir) : undefined;
  const promptIds = flags.ids !== undefined ? Array.from(flags.ids) : encodePrompt(tokenizer!, flags.prompt!);
  const lm = await engine.loadModel(dir, { device });
  const stats = flags.routingStats || flags.routingStatsJson !== undefined ? RoutingStats.forSpec(lm.spec) : undefined;
  lm.setRoutingObserver(stats);
  const text = format === 'text' ? startTextStream(engine.StreamDecoder, tokenizer!, promptIds) : undefined;
  const result = await engine.generate(lm, promptIds, {
    maxNewTokens: flags.maxNewTokens,
    temperature: flags.temperature,
    topK: flags.topK,
    topP: flags.topP,
    ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
    ...(text !== undefined ? { onToken: (id: number) => write(text.push(id)) } : {}),
  });
  write(text !== undefined ? `${text.flush()}\n` : `${result.tokens.join(',')}\n`);
  if (stats) reportRoutingStats(stats, flags, { modelType: lm.modelType, promptTokens: promptIds.length, newTokens: result.tokens.length });
}

/** --routing-stats: the table goes to stderr, so stdout keeps only the text or ids; --routing-stats-json: everything. */
function reportRoutingStats(stats: RoutingStats, flags: GenerateFlags, run: Record<string, string | number>): void {
  const report = stats.report();
  if (flags.routingStats) process.stderr.write(formatRoutingStatsTable(report));
  if (flags.routingStatsJson !== undefined) writeFileAtomically('--routing-stats-json', flags.routingStatsJson, routingStatsJson(report, run));
}

function encodePrompt(tokenizer: TextTokenizer, prompt: string): number[] {
  const ids = tokenizer.encode(prompt);
  if (ids.length === 0) usageError('the prompt is empty (it encodes to no tokens); pass some text, e.g. --prompt "Hello"');
  return ids;
}

/** Prints the prompt as the tokenizer reads it back, then returns the decoder that turns new ids into text. */
function startTextStream(
  Decoder: typeof StreamDecoder, tokenizer: TextTokenizer, promptIds: readonly number[],
): StreamDecoder {
  write(tokenizer.decode(promptIds, { skipSpecialTokens: true }));
  return new Decoder(tokenizer, { skipSpecialTokens: true, contextIds: promptIds });
}

function write(text: string): void {
  if (text !== '') process.stdout.write(text);
}
