/**
 * Makes a file-backed DynamoDB Local keep its writes as fast late in a test run as early on.
 *
 * DynamoDB Local (2.x) describes a table's stream on every write to that table, finding the stream's first record
 * with `SELECT MIN(SequenceNumber) FROM us WHERE StreamID = ?` over the stream log all tables share, which is keyed
 * by sequence number alone: each write scans every record other tables wrote before its stream began. A test run
 * creates a table per file, so later files paid for all earlier ones (the DynamoDB contract suite took 26 s on a
 * fresh instance and 70 s after 20,000 records elsewhere). An index on (StreamID, SequenceNumber) turns the scan
 * into a lookup, and write-ahead logging keeps the file's commits cheap (16 s for the same suite after the same
 * 20,000 records). Only possible on a file-backed instance; it changes how DynamoDB Local finds rows, never what
 * it stores or answers.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"

/** Where a test run's DynamoDB Local keeps its file: memory-backed `/dev/shm` where there is one. */
export const makeDataDir = (): string => {
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir()
  return fs.mkdtempSync(path.join(base, "dynastate-test-dynamodb-"))
}

/**
 * Adds the index (and write-ahead logging) to the database of a running, file-backed, `-sharedDb` DynamoDB Local
 * in `dataDir`. Returns why it did not, if it did not: the tests then run as they would without it.
 */
export const indexStreamLog = (dataDir: string): string | undefined => {
  const file = path.join(dataDir, "shared-local-instance.db")
  if (!fs.existsSync(file)) return `no ${file}`
  const db = new DatabaseSync(file)
  try {
    const columns = db.prepare("SELECT name FROM pragma_table_info('us')").all().map((row) => String(row["name"]))
    if (!columns.includes("StreamID") || !columns.includes("SequenceNumber")) {
      return `its stream log has columns ${columns.join(", ") || "none"}, not StreamID and SequenceNumber`
    }
    db.exec("PRAGMA journal_mode = WAL")
    db.exec("CREATE INDEX IF NOT EXISTS dynastate_stream_log_by_stream ON us (StreamID, SequenceNumber)")
    return undefined
  } finally {
    db.close()
  }
}
