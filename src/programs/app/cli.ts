#!/usr/bin/env node
/**
 * The `dynastate` command line (the commands are in `cli/`): results on stdout, logs and errors on stderr, and an
 * exit code per kind of failure (`cli/Output.ts`), on the store the global flags, `DYNASTATE_*` variables and the
 * configuration file describe (the shared embedded DynamoDB Local by default).
 */
// Subpaths, not the barrel: the barrel loads the HTTP server and more, half a second of every CLI call.
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Console, Effect, Exit, Layer, Logger, References } from "effect"
import { CliError, CliOutput, Command } from "effect/cli"
import { cli } from "./cli/Commands.ts"
import { describeFailure, ExitCode, exitCodeOf, failureJson } from "./cli/Output.ts"

const VERSION = "0.2.0"

/** Help and usage errors of a bad invocation go to stderr: stdout holds only results. */
const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.gen(function*() {
        const formatter = yield* CliOutput.Formatter
        yield* Console.error(formatter.formatHelpDoc(event.helpDoc))
        yield* Console.error(formatter.formatErrors(event.errors))
      })
      : CliOutput.defaultPresenter.present(event)
})

const wantsJson = (args: ReadonlyArray<string>) =>
  args.some((arg, i) =>
    arg === "-ojson" || arg === "--output=json" || (/^(-o|--output)$/.test(arg) && args[i + 1] === "json")
  )

/** A failure is one line on stderr (a JSON line with `-o json`) and its exit code; a defect also shows its cause. */
const report = (cause: Cause.Cause<unknown>) =>
  Effect.gen(function*() {
    if (Cause.hasInterruptsOnly(cause)) return ExitCode.ok
    const error = Cause.squash(cause)
    if (CliError.isCliError(error)) {
      // Already shown with the help; `dynastate` alone shows the help and is not an error.
      return error._tag === "ShowHelp" && error.errors.length === 0 ? ExitCode.ok : ExitCode.usage
    }
    const code = exitCodeOf(error)
    if (wantsJson(process.argv)) yield* Console.error(JSON.stringify(failureJson(error)))
    else yield* Console.error(`dynastate: ${describeFailure(error)}`)
    if (code === ExitCode.unexpected) yield* Console.error(Cause.pretty(cause))
    return code
  })

const program = Command.run(cli, { version: VERSION }).pipe(
  // Quiet by default, as a command line should be; `--log-level info` (or debug) shows what the store does.
  Effect.provideService(References.MinimumLogLevel, "Warn"),
  Effect.exit,
  Effect.flatMap(Exit.match({ onSuccess: () => Effect.succeed(ExitCode.ok), onFailure: report })),
  Effect.flatMap((code) =>
    Effect.sync(() => {
      process.exitCode = code
    })
  ),
  Effect.provide(Layer.mergeAll(NodeServices.layer, presenter)),
  Effect.provideService(Logger.LogToStderr, true)
)

NodeRuntime.runMain(program, { disableErrorReporting: true })
