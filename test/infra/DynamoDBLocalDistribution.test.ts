/**
 * Where the DynamoDB Local download is cached: per user, in the platform's cache directory (or
 * DYNASTATE_CACHE_DIR), never inside the installed package.
 */
import { describe, expect, it } from "@effect/vitest"
import { join, resolve } from "node:path"
import { userCacheDir } from "../../src/infra/local/DynamoDBLocalDistribution.ts"

describe("userCacheDir", () => {
  it("follows DYNASTATE_CACHE_DIR when set, made absolute", () => {
    expect(userCacheDir({ DYNASTATE_CACHE_DIR: "/srv/cache" }, "linux", "/home/u")).toBe("/srv/cache")
    expect(userCacheDir({ DYNASTATE_CACHE_DIR: "rel/cache" }, "linux", "/home/u")).toBe(resolve("rel/cache"))
  })

  it("uses XDG_CACHE_HOME, else ~/.cache, on Linux and other Unixes", () => {
    expect(userCacheDir({ XDG_CACHE_HOME: "/x" }, "linux", "/home/u")).toBe("/x/dynastate")
    expect(userCacheDir({}, "linux", "/home/u")).toBe("/home/u/.cache/dynastate")
    expect(userCacheDir({ XDG_CACHE_HOME: "" }, "freebsd", "/home/u")).toBe("/home/u/.cache/dynastate")
  })

  it("uses ~/Library/Caches on macOS and LOCALAPPDATA on Windows", () => {
    expect(userCacheDir({}, "darwin", "/Users/u")).toBe("/Users/u/Library/Caches/dynastate")
    expect(userCacheDir({ LOCALAPPDATA: "C:/Users/u/AppData/Local" }, "win32", "C:/Users/u")).toBe(
      join("C:/Users/u/AppData/Local", "dynastate", "Cache")
    )
    expect(userCacheDir({}, "win32", "C:/Users/u")).toBe(join("C:/Users/u", "AppData", "Local", "dynastate", "Cache"))
  })

  it("is never inside the package's own folder", () => {
    const packageRoot = resolve(import.meta.dirname, "../..")
    expect(userCacheDir({}, process.platform, "/home/u").startsWith(packageRoot)).toBe(false)
  })
})
