//! The plugin runtime's configuration: every limit a plugin runs under, with its default, its
//! trade-off and why it exists.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits and sizing of the plugin runtime.
///
/// Every evaluation runs under all of these at once (security-lessons S3): exceeding any of them
/// turns the evaluation into a denial whose reason names the limit, never a crash of the host.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Instruction budget of one evaluation, in wasmtime fuel units (roughly one per Wasm
    /// instruction).
    ///
    /// Default: 20,000,000. A Rust policy uses a few thousand; an interpreted one (Python,
    /// JavaScript) 70,000 to 4,000,000 on a fresh instance, so the default leaves room for them
    /// while a runaway loop still stops within about 20 ms of CPU. Fuel is deterministic: the same
    /// input always stops at the same point, which makes denials reproducible in dry-runs.
    pub fuel: u64,

    /// Wall-clock deadline of one evaluation, enforced by epoch interruption.
    ///
    /// Default: 250 ms. A backstop for what fuel does not count (time spent in host calls,
    /// a machine under load); fuel normally stops a guest long before. Precision is one
    /// [`epoch_tick`](Self::epoch_tick).
    #[serde(with = "millis")]
    pub deadline: Duration,

    /// How often the epoch ticker thread advances the engine's epoch.
    ///
    /// Default: 5 ms. Shorter ticks make deadlines more precise at the cost of a wake-up per tick
    /// on one background thread; checking the epoch costs guests ~10% either way.
    #[serde(with = "millis")]
    pub epoch_tick: Duration,

    /// Linear memory one evaluation may use, summed over every memory of the component
    /// (a `ResourceLimiter` counts per store, not per memory).
    ///
    /// Default: 64 MiB. A Rust policy needs 1-2 MiB; a Python component starts at 12.3 MiB.
    /// Also the per-memory size of the pooling allocator's slots, so it bounds the virtual
    /// address space reserved for the pool.
    pub max_memory_bytes: usize,

    /// Elements one evaluation's tables may hold in total.
    ///
    /// Default: 20,000. Rust components use a few hundred; interpreters a few thousand.
    pub max_table_elements: usize,

    /// Native stack that Wasm frames may use.
    ///
    /// Default: 512 KiB (wasmtime's default). Deep recursion past it traps with a stack
    /// overflow that is reported as such.
    pub max_wasm_stack: usize,

    /// Bytes the host lifts from the guest in one host call (wasmtime "hostcall fuel").
    ///
    /// Default: 64 KiB. Plugins only hand the host log lines; wasmtime's default of 128 MiB
    /// would let a guest make the host allocate that much per call.
    pub max_hostcall_bytes: usize,

    /// Bytes of a plugin's answer (the decision with its strings and lists, or a form).
    ///
    /// Default: 64 KiB. Larger answers are refused as "output too large": a decision names
    /// scopes and a reason, never megabytes.
    pub max_output_bytes: usize,

    /// Log lines kept per evaluation (from `log` and from stdout/stderr).
    ///
    /// Default: 64. Lines past it are dropped and counted, so a chatty plugin cannot fill the
    /// audit log.
    pub max_log_lines: usize,

    /// Bytes of log text kept per evaluation, including captured stdout/stderr.
    ///
    /// Default: 16 KiB.
    pub max_log_bytes: usize,

    /// Calls to the `log` host function one evaluation may make; the next one fails the
    /// evaluation as "log limit exceeded".
    ///
    /// Default: 1,000. Lines past `max_log_lines` are dropped, but every call still makes the
    /// host lift up to `max_hostcall_bytes` from the guest, and that host-side work is not
    /// metered by fuel: a plugin logging in a loop would burn host CPU until the deadline.
    /// Stopping it at the 1,001st call costs an honest plugin nothing (it keeps 64 lines anyway)
    /// and names the fault. Output to stdout/stderr needs no such count: its pipe is closed to
    /// the guest once `max_log_bytes` are written.
    pub max_log_calls: usize,

    /// Largest component accepted at ingest.
    ///
    /// Default: 32 MiB. Python components are ~18 MB; Rust and C ones are 3-200 KB. Checked
    /// before anything is parsed (security-lessons S4).
    pub max_module_bytes: usize,

    /// Functions a component may define, summed over all its core modules; checked while
    /// validating, before anything is compiled (security-lessons S4).
    ///
    /// Default: 100,000. A Rust policy defines a few hundred, an interpreter (CPython,
    /// SpiderMonkey) tens of thousands. Compile time grows with the number of functions, and a
    /// module of hundreds of thousands of tiny functions fits well within `max_module_bytes`;
    /// refusing it up front is cheaper than letting it run into `compile_timeout` while holding a
    /// compile slot. Raise it only for a plugin language that needs it.
    pub max_functions: usize,

    /// Longest a compilation may take before ingest gives up on the module.
    ///
    /// Default: 10 s. A 100 KB Rust component compiles in ~30 ms and a Python one in ~6 s on
    /// two cores; a module crafted to blow up the compiler is refused instead of holding a core.
    #[serde(with = "millis")]
    pub compile_timeout: Duration,

    /// Compilations that may run at once; further ingests are refused as busy.
    ///
    /// Default: 2. Compiling is CPU-heavy and cannot be interrupted, so this bounds what an
    /// uploader can take from the machine.
    pub max_concurrent_compiles: usize,

    /// Evaluations that may run at once, which also sizes the pooling allocator.
    ///
    /// Default: 64. Instantiation fails when the pool is full, so callers queue on a semaphore
    /// of this size rather than fail.
    pub max_concurrent_evaluations: u32,

    /// Bytes at the bottom of each pooled linear memory that are reset with `memset` and kept
    /// resident between evaluations, instead of being returned to the kernel with `madvise`.
    ///
    /// Default: 2 MiB. A Rust plugin touches its data, shadow stack and a little heap, all within
    /// that; handing those pages back and faulting them in again is what dominated instantiation
    /// (page faults and TLB flushes, ~2/3 of the time). Either way the memory is reset to the
    /// module's initial image before reuse, so nothing leaks between evaluations. Costs up to
    /// this much resident memory per pool slot that has been used.
    pub keep_resident_bytes: usize,

    /// Directory for compiled artifacts, keyed by content digest and engine compatibility
    /// hash; `None` keeps them in memory only.
    ///
    /// Default: none (the server sets `<data_dir>/compiled`). Only files this process wrote
    /// there are ever deserialized (security-lessons S5): the directory must not be writable by
    /// anyone else.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            fuel: 20_000_000,
            deadline: Duration::from_millis(250),
            epoch_tick: Duration::from_millis(5),
            max_memory_bytes: 64 << 20,
            max_table_elements: 20_000,
            max_wasm_stack: 512 << 10,
            max_hostcall_bytes: 64 << 10,
            max_output_bytes: 64 << 10,
            max_log_lines: 64,
            max_log_bytes: 16 << 10,
            max_log_calls: 1_000,
            max_module_bytes: 32 << 20,
            max_functions: 100_000,
            compile_timeout: Duration::from_secs(10),
            max_concurrent_compiles: 2,
            max_concurrent_evaluations: 64,
            keep_resident_bytes: 2 << 20,
            cache_dir: None,
        }
    }
}

/// Durations in configuration files are whole milliseconds (`deadline = 250`).
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
