import { describe, expect, it } from "@effect/vitest"
import { parseAddress } from "../../src/infra/streams/RelayAddress.ts"
import { compareSequence } from "../../src/infra/streams/StreamEvents.ts"
import { decodeImage, encodeImage, toStreamRecord } from "../../src/infra/streams/WatchRpc.ts"

describe("the watch relay's wire format", () => {
  it("an image crosses byte for byte: binary attributes, strings, numbers, maps and lists", () => {
    const image = {
      pk: { S: "namespace" },
      sk: { B: new Uint8Array([0, 1, 2, 250, 255]) },
      v: { B: new Uint8Array(new Uint8Array([9, 8, 7, 6]).buffer, 1, 2) },
      n: { N: "42" },
      m: { M: { inner: { B: new Uint8Array([3]) }, flag: { BOOL: true } } },
      l: { L: [{ S: "x" }, { B: new Uint8Array([]) }] }
    }
    const decoded = decodeImage(encodeImage(image))
    expect(decoded).toEqual({ ...image, v: { B: new Uint8Array([8, 7]) } })
    expect(decoded.sk?.B).toBeInstanceOf(Uint8Array)
    const record = toStreamRecord({ sequenceNumber: "0007", image: encodeImage(image) })
    expect([record.eventName, record.sequenceNumber, record.newImage?.n]).toEqual(["INSERT", "0007", { N: "42" }])
  })

  it("sequence numbers order by value, whatever their length or leading zeros", () => {
    expect(compareSequence("000000000000000000009", "000000000000000000010")).toBeLessThan(0)
    expect(compareSequence("99", "100")).toBeLessThan(0)
    expect(compareSequence("49999999999999999999999999", "5000000000000000000000")).toBeGreaterThan(0)
    expect(compareSequence("0010", "10")).toBe(0)
  })

  it("host:port is read, with IPv6 in brackets; anything else is refused", () => {
    expect(parseAddress("127.0.0.1:7070")).toEqual({ host: "127.0.0.1", port: 7070 })
    expect(parseAddress(" worker.internal:1 ")).toEqual({ host: "worker.internal", port: 1 })
    expect(parseAddress("[::1]:65535")).toEqual({ host: "::1", port: 65535 })
    for (const bad of ["worker", "worker:", ":7070", "worker:0", "worker:65536", "::1:7070", "http://w:1"]) {
      expect([bad, parseAddress(bad)]).toEqual([bad, undefined])
    }
  })
})
