/// jemalloc instead of glibc's malloc: under the load harness it raised the grant from ~4,800
/// to ~6,200 requests/s and permission tickets from ~15,000 to ~19,000/s (glibc's `malloc` and
/// `free` of each request's many small objects took ~15 % of the server's CPU).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` runs; `_RJEM_MALLOC_CONF` in the environment is read
/// after them and overrides them, option by option.
///
/// `percpu_arena:percpu`: one arena per CPU, chosen by the CPU a thread runs on, instead of
/// jemalloc's default of four arenas per CPU shared out among threads. Default: off. Each arena
/// keeps its own partly used pages, and this server's threads (two tokio workers, the blocking
/// pool that runs the sandboxed evaluations, the store's flusher, sled's I/O threads) all
/// allocate and free the same kinds of objects, so eight arenas on a 2-core machine mostly held
/// eight copies of the same slack. Measured with the load harness (`ONLY=basic,grant,flow,
/// co-tenant,rpt DURATION=8`, 2026-12-04): peak RSS 95-99 MB against 102-106 MB at the end of
/// the run, with jemalloc's own statistics showing 2 instead of 8 arenas and half the metadata
/// (3 against 6 MB at idle), and no loss of throughput. Trade-off: a thread that migrates to
/// another CPU switches arenas, which jemalloc does cheaply on Linux (`sched_getcpu` from the
/// vDSO); contention on an arena stays bounded by the number of CPUs, as with the default.
///
/// `tcache_max:4096`: each thread keeps freed objects of up to 4 KiB for reuse, instead of up to
/// 32 KiB. Default: 32 KiB. Every thread has such a cache, and under load this server ran
/// about ten that allocate when this was measured (two tokio workers and a blocking pool that
/// grew to eight threads for two evaluations at a time; evaluations have had threads of their
/// own since, two or three under that load); with 32 KiB each held up to
/// twenty spare objects of every size class from 16 to 32 KiB (HTTP buffers, tokens, records),
/// about 10 MB in all that no other thread could use. Measured with the load harness
/// (`ONLY=grant,flow DURATION=8`, three alternations, 2026-12-04): peak RSS 65-67 against
/// 76-78 MB in the grant and 69-72 against 77-79 MB in the full flow; throughput within the
/// runs' spread (grant 4,762-5,303 against 4,878-5,741/s, full flow 3,108-3,708 against
/// 2,910-3,611 flows/s). Trade-off: objects from 4 to 32 KiB come from the thread's arena
/// instead, taking the arena's lock per allocation (not profiled since; the throughput above is
/// what was measured).
#[cfg(not(target_env = "msvc"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf = MallocConf(c"percpu_arena:percpu,tcache_max:4096".as_ptr());

/// jemalloc reads `malloc_conf` as a C `const char *`.
#[cfg(not(target_env = "msvc"))]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a string literal, immutable and valid for the whole program.
#[cfg(not(target_env = "msvc"))]
unsafe impl Sync for MallocConf {}

fn main() -> std::process::ExitCode {
    uma_host::cli::main()
}
