//! The fitstream command. Everything it does lives in the library (`fitstream::cli`).

/// mimalloc rather than glibc's malloc: the pipeline allocates and frees many small values per
/// record (keys, decoded fields, emits), and a profile of the embedded replay showed about a
/// fifth of its time in glibc's malloc, free and their consolidation (`docs/BENCHMARKS.md`).
/// Built without transparent huge pages (`no_thp`): with them, the replay's peak resident
/// memory grew from 78 MB (glibc) to 125 MB; without, 72 MB (measured before the segmenter ran
/// a fit on every core, which raised it: `docs/BENCHMARKS.md`). The `system-allocator` feature
/// leaves glibc's malloc in place, for heaptrack (`bench/replay-heap.sh`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fitstream::cli::run().await
}
