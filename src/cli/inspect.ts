// `moets inspect [MODEL] [--json]`: what a checkpoint is — architecture, layers, experts, top-k, total and
// active parameters per token, bytes on disk, FLOPs per token against a dense model of the same size.
// The numbers come from src/models/inspect.ts; this command only picks the table or the JSON.
import { Command } from 'commander';
import { modelArgument, resolveModelArgument } from './options.ts';

interface InspectFlags {
  json?: true;
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('show a model\'s architecture, parameters (total and active per token), size on disk and FLOPs per token')
    .addArgument(modelArgument())
    .option('--json', 'print the report as JSON instead of a table')
    .addHelpText('after', `
Examples:
  $ moets inspect                          the embedded default model
  $ moets inspect path/to/model --json     machine-readable`)
    .action(async (model: string | undefined, flags: InspectFlags) => {
      const { formatInspect, inspectModel } = await import('./engine.ts');
      const report = inspectModel(await resolveModelArgument(model));
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : ensureNewline(formatInspect(report)));
    });
}

function ensureNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}
