/**
 * A small application module built on dynastate: login sessions kept in a typed keyspace, expiring on their own,
 * kept alive while used, revoked at logout. It depends only on the `Store` service, so the same code runs on
 * DynamoDB (`StoreLive`) and in unit tests on the in-memory store (`dynastate/testing`).
 */
import { Keyspace } from "dynastate"
import { Clock, Effect, Schema, Stream } from "effect"

/** A session id: 32 hex characters. */
export const SessionId = Schema.String.pipe(Schema.check(Schema.isPattern(/^[0-9a-f]{32}$/)), Schema.brand("SessionId"))
export type SessionId = typeof SessionId.Type

/** What a session holds. */
export const Session = Schema.Struct({
  user: Schema.String,
  scopes: Schema.Array(Schema.String),
  openedAt: Schema.Date
})
export type Session = typeof Session.Type

/** The sessions, under `/sessions/<id>`. */
export const Sessions = Keyspace.make({ prefix: "/sessions/", key: SessionId, value: Session })

/** How long a session lives without being used. */
export const idleMillis = 15 * 60_000

const newId = Effect.sync(() => SessionId.make(crypto.randomUUID().replaceAll("-", "")))

/** Opens a session for a user; it expires after `idleMillis` unless touched. */
export const open = Effect.fn("Sessions.open")(function*(user: string, scopes: ReadonlyArray<string>) {
  const now = yield* Clock.currentTimeMillis
  const id = yield* newId
  yield* Sessions.create(id, { user, scopes, openedAt: new Date(now) }, { expires: now + idleMillis })
  return id
})

/** The live session of an id, its expiry pushed back by `idleMillis`; `NotFound` once it expired or was revoked. */
export const touch = Effect.fn("Sessions.touch")(function*(id: SessionId) {
  const session = yield* Sessions.get(id)
  const now = yield* Clock.currentTimeMillis
  yield* Sessions.keepAlive(session, now + idleMillis)
  return session.value
})

/** Ends a session at logout. */
export const revoke = (id: SessionId) => Sessions.delete(id)

/** The live sessions of a user. */
export const ofUser = (user: string) =>
  Sessions.items().pipe(
    Stream.filter((session) => session.value.user === user),
    Stream.runCollect
  )
