/** Where a worker serves watches (see `WatchRpc`), as the configuration names it: `host:port`. */

/** Where a worker serves watches: `host:port`. */
export interface RelayAddress {
  readonly host: string
  readonly port: number
}

/** Reads `host:port` (a bracketed IPv6 address too); `undefined` when it is not one. */
export const parseAddress = (text: string): RelayAddress | undefined => {
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim())
  if (match === null) return undefined
  const port = Number(match[3])
  return port >= 1 && port <= 65535 ? { host: (match[1] ?? match[2])!, port } : undefined
}
