/**
 * The store contract (./suite) against the in-memory store: no JVM, no
 * DynamoDB endpoint. What only the memory store has is tested in
 * test/store/memory/.
 */
import { memoryBackend } from "./MemoryBackend.ts"
import { storeContract } from "./suite/index.ts"

storeContract(memoryBackend)
