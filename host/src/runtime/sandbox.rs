//! The state of one evaluation's `Store`: a WASI context that grants nothing, the resource
//! limiter, and the bounded log the plugin writes to.

use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::limits::RuntimeConfig;
use super::types::{Failure, LogLine};
use super::v0_1::policy::uma::policy::{log, types as t};

/// Per-evaluation state. Created fresh for every evaluation and dropped after it
/// (security-lessons S6): nothing a guest did survives into the next requesting party's call.
pub struct Sandbox {
    /// Built on the guest's first WASI call: most policies never make one, and building the
    /// context (clocks, generators, pipes) is a measurable share of a fresh evaluation.
    wasi: Option<WasiCtx>,
    clock: Duration,
    table: ResourceTable,
    limits: Limiter,
    pub(super) logs: Vec<LogLine>,
    log_bytes: usize,
    pub(super) logs_dropped: usize,
    log_calls: usize,
    max_log_calls: usize,
    max_log_lines: usize,
    max_log_bytes: usize,
    /// stdout and stderr, once the WASI context exists.
    stdout: Option<(MemoryOutputPipe, MemoryOutputPipe)>,
}

/// Counts linear memory and table elements over the whole store.
pub struct Limiter {
    memory_bytes: usize,
    pub(super) peak_memory: usize,
    max_memory: usize,
    table_elements: usize,
    max_table_elements: usize,
    /// The limit a guest hit, so the resulting trap is reported precisely.
    pub(super) hit: Option<Failure>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_bytes - current.min(self.memory_bytes) + desired;
        if total > self.max_memory {
            self.hit = Some(Failure::MemoryLimit {
                limit_bytes: self.max_memory,
            });
            // Trapping here, rather than letting `memory.grow` return -1, names the cause: a
            // guest that handles the failure would otherwise only report a vague abort.
            return Err(wasmtime::format_err!("memory limit exceeded"));
        }
        self.memory_bytes = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_elements - current.min(self.table_elements) + desired;
        if total > self.max_table_elements {
            self.hit = Some(Failure::TableLimit {
                limit_elements: self.max_table_elements,
            });
            return Err(wasmtime::format_err!("table limit exceeded"));
        }
        self.table_elements = total;
        Ok(true)
    }
}

/// A clock frozen at the request's server time: guests that read the WASI clocks see what the
/// host asserted, never the host's own clock (security-lessons S2, S15).
struct FrozenClock(Duration);

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A fixed-seed generator: language runtimes that seed hash tables from `wasi:random` work, but
/// a plugin gets no entropy from the host, so its decisions are reproducible.
fn fixed_random() -> wasi_rand::rngs::StdRng {
    use wasi_rand::SeedableRng;
    wasi_rand::rngs::StdRng::seed_from_u64(0x756d_612d_686f_7374)
}

/// A WASI context that grants nothing, with bounded pipes for stdout and stderr. No preopened
/// directories, no network, no environment, no arguments, empty stdin. The sockets interfaces
/// are linked (ingest allows them for toolchains that import them regardless) but refuse
/// everything: TCP, UDP and name lookup are off, and the address check admits no address.
fn wasi_ctx(
    clock: Duration,
    max_log_bytes: usize,
) -> (WasiCtx, MemoryOutputPipe, MemoryOutputPipe) {
    let stdout = MemoryOutputPipe::new(max_log_bytes);
    let stderr = MemoryOutputPipe::new(max_log_bytes);
    let ctx = WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(FrozenClock(clock))
        .monotonic_clock(FrozenClock(clock))
        .secure_random(fixed_random())
        .insecure_random(fixed_random())
        .insecure_random_seed(0)
        .max_random_size(64 << 10)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build();
    (ctx, stdout, stderr)
}

impl Sandbox {
    /// A fresh sandbox whose linear memory, summed over the store, may reach `max_memory` bytes.
    pub fn new(config: &RuntimeConfig, max_memory: usize, now_ms: u64) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(1_000);
        Sandbox {
            wasi: None,
            clock: Duration::from_millis(now_ms),
            table,
            limits: Limiter {
                memory_bytes: 0,
                peak_memory: 0,
                max_memory,
                table_elements: 0,
                max_table_elements: config.max_table_elements,
                hit: None,
            },
            logs: Vec::new(),
            log_bytes: 0,
            logs_dropped: 0,
            log_calls: 0,
            max_log_calls: config.max_log_calls,
            max_log_lines: config.max_log_lines,
            max_log_bytes: config.max_log_bytes,
            stdout: None,
        }
    }

    pub fn limiter(&mut self) -> &mut Limiter {
        &mut self.limits
    }

    pub fn limits(&self) -> &Limiter {
        &self.limits
    }

    fn push_log(&mut self, line: LogLine) {
        let size = line.message.len()
            + line
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if self.logs.len() >= self.max_log_lines || self.log_bytes + size > self.max_log_bytes {
            self.logs_dropped += 1;
            return;
        }
        self.log_bytes += size;
        self.logs.push(line);
    }

    /// Move what the guest wrote to stdout/stderr into the log, within the same bounds.
    pub fn collect_output(&mut self) {
        let Some((stdout, stderr)) = self.stdout.clone() else {
            return; // the guest never touched WASI, so it wrote nothing
        };
        for (level, pipe) in [("stdout", stdout), ("stderr", stderr)] {
            let bytes = pipe.contents();
            if bytes.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| !l.is_empty()) {
                self.push_log(LogLine {
                    level: level.to_string(),
                    message: line.to_string(),
                    fields: Vec::new(),
                });
            }
        }
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (clock, max_log_bytes) = (self.clock, self.max_log_bytes);
        let pipes = &mut self.stdout;
        let ctx = self.wasi.get_or_insert_with(|| {
            let (ctx, stdout, stderr) = wasi_ctx(clock, max_log_bytes);
            *pipes = Some((stdout, stderr));
            ctx
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl t::Host for Sandbox {}

impl log::Host for Sandbox {
    fn log(
        &mut self,
        level: t::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.log_calls += 1;
        if self.log_calls > self.max_log_calls {
            self.limits.hit = Some(Failure::LogLimit {
                limit_calls: self.max_log_calls,
            });
            return Err(wasmtime::format_err!("log limit exceeded"));
        }
        let level = match level {
            t::Level::Trace => "trace",
            t::Level::Debug => "debug",
            t::Level::Info => "info",
            t::Level::Warn => "warn",
            t::Level::Error => "error",
        };
        self.push_log(LogLine {
            level: level.to_string(),
            message,
            fields,
        });
        Ok(())
    }
}
