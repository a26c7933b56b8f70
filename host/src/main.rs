/// jemalloc instead of glibc's malloc: under the load harness it raised the grant from ~4,800
/// to ~6,200 requests/s and permission tickets from ~15,000 to ~19,000/s (glibc's `malloc` and
/// `free` of each request's many small objects took ~15 % of the server's CPU).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    uma_host::cli::main()
}
