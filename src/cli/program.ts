// The `moets` program: one command per file (generate.ts, chat.ts, logits.ts, inspect.ts), the top-level help, and
// commander configured so that its own parse errors reach main.ts's handler as one-line usage errors.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { benchCommand } from './bench.ts';
import { chatCommand } from './chat.ts';
import { commanderExitHandler } from './errors.ts';
import { generateCommand } from './generate.ts';
import { inspectCommand } from './inspect.ts';
import { logitsCommand } from './logits.ts';

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const EXAMPLES = `
Examples:
  $ moets generate --prompt "Call me Ishmael."        continue a prompt with the embedded default model
  $ moets chat path/to/Mixtral-8x7B-Instruct           chat in the terminal (the model's chat template)
  $ moets inspect path/to/Mixtral-8x7B                 parameters, active parameters and FLOPs per token
  $ moets generate path/to/model --ids 3,1,4 --max-new-tokens 8 --temperature 0 --format ids
  $ moets logits path/to/model --ids 3,1,4 --out logits.f32

MODEL is a Hugging Face model directory (config.json, *.safetensors and, for text, tokenizer.json);
without it the small default model shipped with moets is used.
Environment: MOETS_DEVICE=cpu|cuda|auto picks the device when --device is not given.`;

/** Commander's errors go through our handler (one line, exit 2), never straight to stderr. */
function routeErrors(command: Command, commandPath: string): Command {
  return command
    .exitOverride(commanderExitHandler(commandPath))
    .configureOutput({ outputError: () => {} })
    .showHelpAfterError(false);
}

export function buildProgram(): Command {
  const program = routeErrors(new Command('moets'), 'moets')
    .description('Mixture-of-Experts engine: run and inspect Hugging Face MoE checkpoints (Mixtral, Qwen-MoE, OLMoE)')
    .version(packageJson.version, '-V, --version', 'print the moets version')
    .helpOption('-h, --help', 'show this help')
    .helpCommand('help [command]', 'show help for a command')
    .addHelpText('after', EXAMPLES);
  for (const command of [generateCommand(), chatCommand(), logitsCommand(), inspectCommand(), benchCommand()]) {
    program.addCommand(routeErrors(command, `moets ${command.name()}`).helpOption('-h, --help', 'show this help'));
  }
  return program;
}
