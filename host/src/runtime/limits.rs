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

    /// The most fuel a module may ask for at upload (see [`Limits`]): the global maximum of the
    /// per-module budget.
    ///
    /// Default: 200,000,000 (ten times [`fuel`](Self::fuel)), about 200 ms of CPU for a runaway
    /// module. Interpreted languages pay for their interpreter in fuel (a Python component uses
    /// ~150,000 per call before the policy's own work), so an owner with a heavy Python or
    /// JavaScript policy can raise its budget without the server raising everyone's. Keep it
    /// well below what [`deadline`](Self::deadline) allows, so fuel, which is deterministic,
    /// stops a guest before the wall clock does.
    pub max_fuel: u64,

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

    /// Evaluations in a row of one owner's module that end out of fuel or past the deadline
    /// before that module is suspended for [`suspension`](Self::suspension); 0 never suspends.
    ///
    /// Default: 3. Per-owner slots keep a spinning policy from taking other owners' slots,
    /// but on two cores the CPU it burns still cost another owner's grant p99 a factor of 7
    /// (2.4 to 17 ms); two `SCHED_IDLE` busy loops outside the server did almost as much, so
    /// no scheduling makes burnt CPU harmless there: not running it does. An honest policy that hits its budget now and then succeeds in between,
    /// which resets the count; one that spins on every call is stopped after three calls
    /// instead of burning a core per slot for as long as requests keep coming. Suspended
    /// evaluations are denied with a reason the owner sees in the audit log (fail closed).
    pub suspend_after: u32,

    /// How long a suspension lasts; evaluations of the module are refused meanwhile, and the
    /// first one after it runs normally.
    ///
    /// Default: 30 s. Long enough that a spinning module costs a few evaluations' CPU per
    /// pause, short enough that an owner who fixes the cause (a configuration, a claim the
    /// policy chokes on) is not locked out for long.
    #[serde(with = "millis")]
    pub suspension: Duration,

    /// Linear memory one evaluation may use, summed over every memory of the component
    /// (a `ResourceLimiter` counts per store, not per memory).
    ///
    /// Default: 64 MiB. A Rust policy needs 1-2 MiB; a Python component starts at 12.3 MiB.
    /// Also the per-memory size of the pooling allocator's slots, so it bounds the virtual
    /// address space reserved for the pool.
    pub max_memory_bytes: usize,

    /// The most linear memory a module may ask for at upload (see [`Limits`]): the global
    /// maximum of the per-module memory cap.
    ///
    /// Default: 256 MiB. Also the size of each pooling-allocator memory slot, so it sets the
    /// virtual address space reserved for the pool (`max_concurrent_evaluations` x 4 slots):
    /// 64 GiB of address space with the defaults, not resident memory. Must be at least
    /// [`max_memory_bytes`](Self::max_memory_bytes).
    pub max_module_memory_bytes: usize,

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

    /// Evaluations that may run at once: the most evaluation threads, and the pooling
    /// allocator's instance slots.
    ///
    /// Default: 64. Every call into a guest (policy, claims plugin, configuration check) runs
    /// on one of these threads, so instantiation never finds the pool full; callers beyond it
    /// wait in line. Threads start on demand and stop after 10 s idle, so a server whose owners'
    /// policies finish in microseconds runs on two or three; the bound matters when policies
    /// spin until their deadline, where `max_concurrent_evaluations_per_owner` shares it out.
    pub max_concurrent_evaluations: u32,

    /// Evaluations of one resource owner's policies that may run at once; more queue.
    ///
    /// Default: 2 (one per core of the machines we size for). An owner whose policy spins until
    /// its deadline on every call occupies at most this many threads, so the other owners'
    /// evaluations keep their slots and most of the CPU. Raise it for owners with heavy
    /// legitimate traffic on larger machines; it never exceeds `max_concurrent_evaluations`.
    pub max_concurrent_evaluations_per_owner: usize,

    /// Compiled modules kept loaded in memory; the least recently used go first.
    ///
    /// Default: 64. A loaded module costs about 0.7 MiB of code and metadata; reloading an
    /// evicted one from the compiled-artifact cache takes a few ms. Without a bound, a server
    /// with 1,000 stored modules grew to 714 MiB once all had been used.
    pub max_loaded_modules: usize,

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
            max_fuel: 200_000_000,
            deadline: Duration::from_millis(250),
            epoch_tick: Duration::from_millis(5),
            suspend_after: 3,
            suspension: Duration::from_secs(30),
            max_memory_bytes: 64 << 20,
            max_module_memory_bytes: 256 << 20,
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
            max_concurrent_evaluations_per_owner: 2,
            max_loaded_modules: 64,
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

/// The budget of one module's evaluations: the server's defaults unless the module's upload
/// asked for more (or less), within the global maxima.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Instruction budget of one evaluation (wasmtime fuel).
    pub fuel: u64,
    /// Linear memory one evaluation may use, summed over the component's memories.
    pub memory_bytes: usize,
}

/// What an upload asked for; `None` takes the server's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedLimits {
    pub fuel: Option<u64>,
    pub memory_bytes: Option<usize>,
}

/// Smallest budgets an upload may ask for: below them no component of ours even instantiates,
/// and a module that cannot answer only produces confusing denials.
pub const MIN_FUEL: u64 = 10_000;
pub const MIN_MEMORY_BYTES: usize = 1 << 20;

impl RuntimeConfig {
    /// The limits a module runs under when its upload asked for nothing.
    pub fn default_limits(&self) -> Limits {
        Limits {
            fuel: self.fuel,
            memory_bytes: self.max_memory_bytes,
        }
    }

    /// Check requested limits against the global maxima. The error is shown to the uploader.
    pub fn limits(&self, requested: RequestedLimits) -> Result<Limits, String> {
        let fuel = requested.fuel.unwrap_or(self.fuel);
        if !(MIN_FUEL..=self.max_fuel).contains(&fuel) {
            return Err(format!(
                "fuel {fuel} is outside what this server allows: {MIN_FUEL} to {}",
                self.max_fuel
            ));
        }
        let memory_bytes = requested.memory_bytes.unwrap_or(self.max_memory_bytes);
        let ceiling = self.max_module_memory_bytes.max(self.max_memory_bytes);
        if !(MIN_MEMORY_BYTES..=ceiling).contains(&memory_bytes) {
            return Err(format!(
                "memory_bytes {memory_bytes} is outside what this server allows: {MIN_MEMORY_BYTES} to {ceiling}"
            ));
        }
        Ok(Limits { fuel, memory_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_limits_are_checked_against_the_global_maxima() {
        let c = RuntimeConfig::default();
        assert_eq!(c.limits(RequestedLimits::default()), Ok(c.default_limits()));
        let more = c
            .limits(RequestedLimits {
                fuel: Some(c.max_fuel),
                memory_bytes: Some(c.max_module_memory_bytes),
            })
            .unwrap();
        assert_eq!(more.fuel, 200_000_000);
        assert_eq!(more.memory_bytes, 256 << 20);
        let err = c
            .limits(RequestedLimits {
                fuel: Some(c.max_fuel + 1),
                memory_bytes: None,
            })
            .unwrap_err();
        assert_eq!(
            err,
            "fuel 200000001 is outside what this server allows: 10000 to 200000000"
        );
        let err = c
            .limits(RequestedLimits {
                fuel: None,
                memory_bytes: Some(1024),
            })
            .unwrap_err();
        assert!(err.starts_with("memory_bytes 1024 is outside"), "{err}");
    }
}
