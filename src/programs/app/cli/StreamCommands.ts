/**
 * Commands whose answer is a sequence: `range` (alias `ls`) lists live items under a prefix, `history` a key's
 * kept events, `watch` live changes under prefixes. With `-o json` each element is one JSON line, so a consumer
 * can read them as they come; a watch prints a resumable `position` with every change (`--from` takes it).
 */
import { Console, Effect, Option, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { Event } from "../../../domain/Event.ts"
import type { Item } from "../../../domain/Item.ts"
import { Store } from "../../store/Store.ts"
import type { WatchEvent } from "../../store/Store.ts"
import { withStore } from "./Globals.ts"
import * as Input from "./Input.ts"
import { emit, itemJson, itemText, jsonValue, OutputFormat } from "./Output.ts"

const lenient = new TextDecoder()

const range = Command.make("range", {
  prefix: Argument.String("prefix").pipe(
    Argument.withDescription("list the keys starting with this (all keys when left out)"),
    Argument.withDefault("")
  ),
  keysOnly: Flag.Boolean("keys-only").pipe(
    Flag.withDefault(false),
    Flag.withDescription("print the keys, not the items")
  ),
  limit: Flag.Int("limit").pipe(Flag.optional, Flag.withDescription("at most this many items")),
  desc: Flag.Boolean("desc").pipe(Flag.withDefault(false), Flag.withDescription("in descending key order"))
}, ({ prefix, keysOnly, limit, desc }) =>
  withStore(
    "use",
    Effect.gen(function*() {
      const store = yield* Store
      if (Option.isSome(limit) && limit.value < 1) {
        return yield* new Input.InputInvalid({ input: "--limit", reason: "must be 1 or more" })
      }
      yield* store.items({
        // The smallest key there is (NUL cannot be in one) when the whole key space is listed.
        start: prefix === "" ? "\u0001" : prefix,
        end: Input.prefixEnd(prefix),
        limit: Option.getOrUndefined(limit),
        descending: desc
      }).pipe(
        Stream.runForEach((item: Item) =>
          keysOnly
            ? emit({ text: item.key, json: { key: item.key }, value: item.key })
            : emit({ text: itemText(item), json: itemJson(item), value: lenient.decode(item.value) })
        )
      )
    })
  )).pipe(
    Command.withAlias("ls"),
    Command.withDescription("List the live items under a prefix, in key order (-o json: one JSON line per item)")
  )

const eventJson = (event: Event) => ({
  key: event.key,
  seq: event.seq,
  op: event.op,
  revision: event.revision,
  timestamp: new Date(event.timestamp).toISOString(),
  ...(event.value === undefined ? {} : jsonValue(event.value)),
  ...(event.expires === undefined ? {} : { expires: new Date(event.expires).toISOString() }),
  ...(event.shredded === undefined ? {} : { shredded: true })
})

const eventText = (event: Event) =>
  `seq ${event.seq} ${new Date(event.timestamp).toISOString()} ${event.op} @ ${event.revision}` +
  (event.value === undefined ? "" : ` ${JSON.stringify(lenient.decode(event.value))}`) +
  (event.shredded === undefined ? "" : " (shredded)")

const history = Command.make("history", {
  key: Argument.String("key").pipe(Argument.withDescription("the key whose events to print"))
}, ({ key }) =>
  withStore(
    "use",
    Store.use((store) =>
      store.history(key).pipe(
        Stream.runForEach((event) => emit({ text: eventText(event), json: eventJson(event), value: event.value }))
      )
    )
  )).pipe(Command.withDescription("Print every kept event of a key, oldest first (-o json: one JSON line per event)"))

type Change = Exclude<WatchEvent, { readonly _tag: "Init" }>

const changeJson = (change: Change) => ({
  event: change._tag,
  ...(change._tag === "Put"
    ? itemJson(change.item)
    : { key: change.key, revision: change.revision }),
  seq: change.seq,
  position: Input.encodePosition(change.position)
})

const changeText = (change: Change) =>
  change._tag === "Put"
    ? `PUT ${itemText(change.item)}`
    : `${change._tag.toUpperCase()} ${change.key} @ ${change.revision}`

const watch = Command.make("watch", {
  prefix: Flag.String("prefix").pipe(
    Flag.atLeast(0),
    Flag.withDescription("watch keys starting with this (repeatable; every key when left out)")
  ),
  from: Flag.String("from").pipe(
    Flag.optional,
    Flag.withDescription("resume after this position (the `position` of a change printed with -o json)")
  ),
  count: Flag.Int("count").pipe(Flag.optional, Flag.withDescription("stop after this many changes"))
}, ({ prefix, from, count }) =>
  Effect.gen(function*() {
    const resumeFrom = Option.isSome(from) ? yield* Input.decodePosition(from.value) : undefined
    if (Option.isSome(count) && count.value < 1) {
      return yield* new Input.InputInvalid({ input: "--count", reason: "must be 1 or more" })
    }
    const format = yield* OutputFormat
    yield* withStore(
      "use",
      Store.use((store) =>
        store.watch({ prefixes: prefix, resumeFrom }).pipe(
          Stream.tap((event) =>
            event._tag === "Init"
              ? format === "json"
                ? Console.log(JSON.stringify({ event: "Init" }))
                : Console.error(`watching ${prefix.length === 0 ? "every key" : prefix.join(", ")}; Ctrl-C stops`)
              : emit({
                text: changeText(event),
                json: changeJson(event),
                value: event._tag === "Put" ? event.item.value : undefined
              })
          ),
          Stream.filter((event) => event._tag !== "Init"),
          Option.isSome(count) ? Stream.take(count.value) : (stream) => stream,
          Stream.runDrain
        )
      )
    )
  })).pipe(
    Command.withDescription(
      "Print changes under prefixes as they happen (-o json: one JSON line each, with a position for --from)"
    )
  )

/** The commands that print sequences. */
export const streamCommands = [range, history, watch] as const
