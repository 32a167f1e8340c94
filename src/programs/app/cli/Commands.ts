/**
 * The `dynastate` command tree: every command group, the global flags, and the description `--help` shows (with
 * the exit codes). A new group of commands is one module exporting an array of commands, added to `groups` here.
 */
import { Command } from "effect/cli"
import { adminCommands } from "./AdminCommands.ts"
import { auditCommands } from "./AuditCommand.ts"
import { storeFlags } from "./Globals.ts"
import { keyCommands } from "./KeyCommands.ts"
import { opsCommands } from "./OpsCommands.ts"
import { exitCodesHelp, OutputFormat } from "./Output.ts"
import { partitionCommands } from "./PartitionCommand.ts"
import { policyCommands } from "./PolicyCommand.ts"
import { setupCommands } from "./SetupCommands.ts"
import { streamCommands } from "./StreamCommands.ts"
import { txnCommands } from "./TxnCommand.ts"

/** The command groups, in the order `--help` lists them. */
export const groups = [
  { group: "Keys", commands: [...keyCommands, ...txnCommands] },
  { group: "Listing and watching", commands: streamCommands },
  { group: "Set-up", commands: setupCommands },
  { group: "Operations", commands: [...opsCommands, ...auditCommands, ...policyCommands] },
  { group: "Running and maintenance", commands: [...adminCommands, ...partitionCommands] }
] as const

/** The root command. */
export const cli = Command.make("dynastate").pipe(
  Command.withDescription(
    "An event-sourced, encrypted key/value store on DynamoDB. Results go to stdout (-o text|json|value), logs " +
      `to stderr (--log-level). Values: literal, @file or - (stdin). ${exitCodesHelp}.`
  ),
  Command.withSubcommands(groups),
  Command.withGlobalFlags([OutputFormat, ...storeFlags])
)
