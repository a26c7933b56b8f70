//! The plugin runtime: one wasmtime `Engine`, one `Linker`, pre-instantiated modules, and a
//! fresh `Store` under hard limits for every evaluation.
//!
//! It knows nothing of HTTP or storage: it takes bytes and inputs, and returns modules and
//! decisions. Every failure of a guest — a trap, a limit, a malformed answer — becomes a denial
//! with a reason (fail closed); nothing a guest does can crash the host.

#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod hardening;
mod ingest;
mod limits;
pub mod pool;
mod sandbox;
mod suspension;
pub mod types;
mod v0_1;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use ingest::{FEATURES, IngestError, Surface, WASI_ALLOWED, World, digest};
pub use limits::{Limits, MIN_FUEL, MIN_MEMORY_BYTES, RequestedLimits, RuntimeConfig};
use sandbox::Sandbox;
pub use types::*;

/// A module that passed ingest: compiled, linked and ready to instantiate.
pub struct Module {
    /// Hex SHA-256 of the component bytes.
    pub digest: String,
    pub world: World,
    /// Size of the component in bytes.
    pub size: usize,
    /// The component's top-level imports.
    pub imports: Vec<String>,
    /// The component's top-level exports.
    pub exports: Vec<String>,
    /// Memories and tables it needs at instantiation, when known statically.
    pub memories: Option<u32>,
    /// Whether the compiled artifact came from the cache.
    pub from_cache: bool,
    /// How long compiling (or loading the cached artifact) took.
    pub load_time: Duration,
    pre: Pre,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("digest", &self.digest)
            .field("world", &self.world)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

enum Pre {
    Policy(v0_1::policy::PolicyPre<Sandbox>),
    Claims(v0_1::claims::ClaimsPre<Sandbox>),
}

/// Evaluations of one request handed to an evaluation thread at once. Each hand-off costs a
/// thread wake-up (tens of microseconds, several times one evaluation of a small policy);
/// more per hand-off holds an owner slot and a thread longer before other requests'
/// evaluations get them (32 fresh instances of a Rust policy take ~0.4 ms).
pub const EVALUATIONS_PER_HANDOFF: usize = 32;

/// One policy evaluation: the module, its input and the limits it runs under.
pub struct PolicyJob {
    pub module: Arc<Module>,
    pub input: PolicyInput,
    pub limits: Limits,
}

/// The plugin runtime. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<Sandbox>,
    config: RuntimeConfig,
    /// Identifies the engine's compiled-code format, so cached artifacts of another build or
    /// configuration are never loaded.
    compat: String,
    modules: Mutex<Loaded>,
    /// Per-owner evaluation slots (see `RuntimeConfig::max_concurrent_evaluations_per_owner`).
    owner_slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    compiles: AtomicUsize,
    /// Where every call into a guest runs: at most `max_concurrent_evaluations` threads, as
    /// many as the engine's pool has instance slots.
    threads: pool::Threads,
    suspensions: suspension::Suspensions,
    stop_ticker: Arc<AtomicBool>,
}

/// Loaded modules, least recently used evicted first beyond `max_loaded_modules`. An evicted
/// module is loaded again from the compiled-artifact cache (a few ms) when next needed.
#[derive(Default)]
struct Loaded {
    map: HashMap<String, (Arc<Module>, u64)>,
    clock: u64,
}

impl Loaded {
    fn get(&mut self, digest: &str) -> Option<Arc<Module>> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(digest).map(|(m, used)| {
            *used = clock;
            m.clone()
        })
    }

    fn insert(&mut self, digest: String, module: Arc<Module>, cap: usize) {
        while self.map.len() >= cap.max(1) && !self.map.contains_key(&digest) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(d, _)| d.clone());
            match oldest {
                Some(d) => self.map.remove(&d),
                None => break,
            };
        }
        self.clock += 1;
        self.map.insert(digest, (module, self.clock));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Build the engine, the linker and the epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config(&config))?;
        let mut linker = Linker::<Sandbox>::new(&engine);
        // The full WASI 0.2 linker; ingest refuses any import outside `WASI_ALLOWED` before a
        // component gets here, and the context behind it grants nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        v0_1::policy::Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());

        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)?;
        }

        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            let tick = config.epoch_tick;
            std::thread::Builder::new()
                .name("uma-epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })?;
        }

        Ok(Runtime {
            inner: Arc::new(Inner {
                threads: pool::Threads::new(
                    "uma-eval",
                    config.max_concurrent_evaluations as usize,
                    // Guest frames run on this stack (up to `max_wasm_stack`), host frames
                    // around them; tokio's blocking threads, which ran this before, had 2 MiB.
                    (config.max_wasm_stack + (1 << 20)).max(2 << 20),
                    // As tokio's blocking pool: a thread idle this long stops.
                    Duration::from_secs(10),
                ),
                engine,
                linker,
                compat,
                config,
                modules: Mutex::new(Loaded::default()),
                owner_slots: Mutex::new(HashMap::new()),
                suspensions: Default::default(),
                compiles: AtomicUsize::new(0),
                stop_ticker,
            }),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The module with this digest, if it was ingested before in this process.
    pub fn loaded(&self, digest: &str) -> Option<Arc<Module>> {
        self.inner.modules.lock().unwrap().get(digest)
    }

    /// How many modules are loaded in memory now.
    pub fn loaded_count(&self) -> usize {
        self.inner.modules.lock().unwrap().map.len()
    }

    /// The one ingest path (security-lessons S1): validate, check the surface, compile (or load
    /// our own cached artifact), link; the module stays loaded (up to `max_loaded_modules`).
    /// Blocking: call it off the async reactor.
    pub fn ingest(&self, bytes: &[u8]) -> Result<Arc<Module>, IngestError> {
        self.ingest_inner(bytes, true)
    }

    /// [`Runtime::ingest`] for an upload: the same checks and compilation (which also writes
    /// the compiled artifact to the cache), but the module is not kept loaded unless it already
    /// was. It is loaded at its first use, from the artifact. Uploading 1,000 modules otherwise
    /// left the last `max_loaded_modules` of them resident (~0.45 MiB each) whether or not
    /// anything ever used them.
    pub fn ingest_unloaded(&self, bytes: &[u8]) -> Result<Arc<Module>, IngestError> {
        self.ingest_inner(bytes, false)
    }

    fn ingest_inner(&self, bytes: &[u8], keep: bool) -> Result<Arc<Module>, IngestError> {
        let inner = &self.inner;
        let surface = ingest::inspect(
            bytes,
            inner.config.max_module_bytes,
            inner.config.max_functions,
        )?;
        let digest = digest(bytes);
        if let Some(m) = inner.modules.lock().unwrap().get(&digest) {
            return Ok(m);
        }

        let started = Instant::now();
        let (component, from_cache) = self.compile(bytes, &digest)?;
        let load_time = started.elapsed();

        let resources = component.resources_required();
        if let Some(r) = &resources {
            if let Some(initial) = r.max_initial_memory_size {
                let bytes = initial.saturating_mul(65_536);
                // Checked against the most a module may ask for; a module that asked for less
                // than its initial memory fails each evaluation with the memory limit named.
                let ceiling = inner
                    .config
                    .max_module_memory_bytes
                    .max(inner.config.max_memory_bytes);
                if bytes > ceiling as u64 {
                    return Err(IngestError::Resources(format!(
                        "its initial linear memory is {bytes} bytes, the limit is {ceiling}"
                    )));
                }
            }
            if let Some(elements) = r.max_initial_table_size
                && elements > inner.config.max_table_elements as u64
            {
                return Err(IngestError::Resources(format!(
                    "its initial table has {elements} elements, the limit is {}",
                    inner.config.max_table_elements
                )));
            }
        }

        let instance_pre = inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| IngestError::Link(format!("{e:#}")))?;
        let pre = match surface.world {
            World::Policy => Pre::Policy(
                v0_1::policy::PolicyPre::new(instance_pre)
                    .map_err(|e| IngestError::Link(format!("{e:#}")))?,
            ),
            World::Claims => Pre::Claims(
                v0_1::claims::ClaimsPre::new(instance_pre)
                    .map_err(|e| IngestError::Link(format!("{e:#}")))?,
            ),
        };
        let module = Arc::new(Module {
            digest: digest.clone(),
            world: surface.world,
            size: bytes.len(),
            imports: surface.imports,
            exports: surface.exports,
            memories: resources.map(|r| r.num_memories),
            from_cache,
            load_time,
            pre,
        });
        if keep {
            inner.modules.lock().unwrap().insert(
                digest,
                module.clone(),
                inner.config.max_loaded_modules,
            );
        }
        Ok(module)
    }

    fn artifact_path(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.inner.config.cache_dir.as_ref()?;
        Some(dir.join(format!("{digest}-{}.cwasm", self.inner.compat)))
    }

    /// Compile `bytes`, or load the artifact this server compiled from the same bytes before.
    fn compile(&self, bytes: &[u8], digest: &str) -> Result<(Component, bool), IngestError> {
        let inner = &self.inner;
        let path = self.artifact_path(digest);
        if let Some(path) = path.as_ref().filter(|p| p.exists()) {
            // SAFETY: the file is named by the digest of bytes that passed validation and by
            // this engine's compatibility hash, and only this server writes into the cache
            // directory (atomically, below): it is our own artifact (security-lessons S5).
            match unsafe { Component::deserialize_file(&inner.engine, path) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "discarding unreadable compiled artifact");
                    let _ = std::fs::remove_file(path);
                }
            }
        }

        if inner.compiles.fetch_add(1, Ordering::SeqCst) >= inner.config.max_concurrent_compiles {
            inner.compiles.fetch_sub(1, Ordering::SeqCst);
            return Err(IngestError::Busy);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let engine = inner.engine.clone();
        let owned = bytes.to_vec();
        let runtime = self.inner.clone();
        // Cranelift cannot be interrupted: the compile runs on its own thread and the caller
        // stops waiting at the timeout. The slot stays taken until the thread ends, which
        // bounds how much CPU abandoned compilations hold.
        let spawned = std::thread::Builder::new()
            .name("uma-compile".into())
            .spawn(move || {
                let result = engine.precompile_component(&owned);
                runtime.compiles.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            inner.compiles.fetch_sub(1, Ordering::SeqCst);
            return Err(IngestError::Compile(e.to_string()));
        }
        let artifact = match rx.recv_timeout(inner.config.compile_timeout) {
            Ok(Ok(artifact)) => artifact,
            Ok(Err(e)) => return Err(IngestError::Compile(format!("{e:#}"))),
            Err(_) => {
                return Err(IngestError::CompileTimeout(
                    inner.config.compile_timeout.as_millis(),
                ));
            }
        };
        // SAFETY: `artifact` was produced just now by `precompile_component` of this engine.
        let component = unsafe { Component::deserialize(&inner.engine, &artifact) }
            .map_err(|e| IngestError::Compile(format!("{e:#}")))?;
        if let Some(path) = path {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let written =
                std::fs::write(&tmp, &artifact).and_then(|_| std::fs::rename(&tmp, &path));
            if let Err(e) = written {
                tracing::warn!(%digest, error = %e, "could not cache compiled artifact");
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok((component, false))
    }

    /// Evaluate a policy for one permission under the server's default limits. Blocking; see
    /// [`Runtime::evaluate_policy`] for the async entry point. Always returns a decision:
    /// failures deny.
    pub fn evaluate_policy_blocking(&self, module: &Module, input: &PolicyInput) -> PolicyOutcome {
        let limits = self.inner.config.default_limits();
        self.evaluate_policy_limited(module, input, limits)
    }

    /// Evaluate a policy for one permission under a module's own [`Limits`] (checked against
    /// the global maxima when the module was uploaded). Blocking.
    pub fn evaluate_policy_limited(
        &self,
        module: &Module,
        input: &PolicyInput,
        limits: Limits,
    ) -> PolicyOutcome {
        let Pre::Policy(pre) = &module.pre else {
            return failed(
                Failure::Instantiation {
                    message: "the module is a claims plugin, not a policy".into(),
                },
                Usage::default(),
            );
        };
        let max_output = self.inner.config.max_output_bytes;
        let request = v0_1::request(input);
        let (result, usage) = self.run(input.context.now_ms, limits, |store| {
            let instance = pre.instantiate(&mut *store)?;
            let decision = instance
                .uma_policy_evaluator()
                .call_evaluate(&mut *store, &request)?;
            let bytes = v0_1::decision_len(&decision);
            if bytes > max_output {
                return Ok(Err(Failure::OutputTooLarge {
                    bytes,
                    limit_bytes: max_output,
                }));
            }
            Ok(Ok(decision))
        });
        match result {
            Ok(decision) => PolicyOutcome {
                decision: v0_1::decision(decision, &input.permission.requested_scopes),
                failure: None,
                usage,
            },
            Err(failure) => failed(failure, usage),
        }
    }

    /// Evaluate a policy on the bounded evaluation pool, off the async reactor, under the
    /// server's default limits.
    pub async fn evaluate_policy(&self, module: Arc<Module>, input: PolicyInput) -> PolicyOutcome {
        let limits = self.inner.config.default_limits();
        self.evaluate_policy_with(module, input, limits).await
    }

    /// Evaluate a policy on the bounded evaluation pool under a module's own [`Limits`]. An
    /// owner first takes one of their own slots, then one of the pool's threads: an owner whose
    /// policies burn their whole budget queues behind their own evaluations and holds at most
    /// their share of the threads, so other owners' evaluations still find free ones and CPU.
    pub async fn evaluate_policy_with(
        &self,
        module: Arc<Module>,
        input: PolicyInput,
        limits: Limits,
    ) -> PolicyOutcome {
        let mut outcomes = self
            .evaluate_policies_with(vec![PolicyJob {
                module,
                input,
                limits,
            }])
            .await;
        outcomes
            .pop()
            .unwrap_or_else(|| failed(lost_evaluation(), Usage::default()))
    }

    /// Evaluate many policies (one request's permissions), answering in the jobs' order. Runs
    /// of one owner's jobs go to an evaluation thread [`EVALUATIONS_PER_HANDOFF`] at a time, each
    /// run under one owner slot on one thread, the runs concurrently as the owner's slots
    /// allow. Each job still gets a fresh instance and its own limits; a module suspended
    /// midway is refused for the rest of the run.
    pub async fn evaluate_policies_with(&self, jobs: Vec<PolicyJob>) -> Vec<PolicyOutcome> {
        let total = jobs.len();
        let mut runs: Vec<Vec<PolicyJob>> = Vec::new();
        for job in jobs {
            match runs.last_mut() {
                Some(run)
                    if run.len() < EVALUATIONS_PER_HANDOFF
                        && run[0].input.permission.owner == job.input.permission.owner =>
                {
                    run.push(job)
                }
                _ => runs.push(vec![job]),
            }
        }
        let outcomes =
            futures_util::future::join_all(runs.into_iter().map(|run| self.run_jobs(run))).await;
        let outcomes: Vec<PolicyOutcome> = outcomes.into_iter().flatten().collect();
        debug_assert_eq!(outcomes.len(), total);
        outcomes
    }

    /// One owner's run of jobs on an evaluation thread.
    async fn run_jobs(&self, jobs: Vec<PolicyJob>) -> Vec<PolicyOutcome> {
        let Some(first) = jobs.first() else {
            return Vec::new();
        };
        let owner = first.input.permission.owner.clone();
        let n = jobs.len();
        // Jobs of a suspended module need no slot: answer them at once if that is all there is.
        let refused: Option<Vec<Failure>> = jobs
            .iter()
            .map(|j| self.inner.suspensions.check(&owner, &j.module.digest))
            .collect();
        if let Some(refused) = refused {
            return refused
                .into_iter()
                .map(|f| failed(f, Usage::default()))
                .collect();
        }
        let owner_permit = self.owner_slots(&owner).acquire_owned().await;
        self.sandboxed(move |runtime| {
            let _permit = owner_permit;
            jobs.iter()
                .map(|job| runtime.suspended_or_run(&owner, job))
                .collect()
        })
        .await
        .unwrap_or_else(|lost| {
            (0..n)
                .map(|_| {
                    failed(
                        Failure::Trap {
                            message: lost.to_string(),
                        },
                        Usage::default(),
                    )
                })
                .collect()
        })
    }

    /// Runs `f`, which calls into guests, on one of the evaluation threads ([`pool`]), never
    /// on the caller's: the async workers go on serving requests meanwhile, and no more guest
    /// instances exist at once than the engine's pool has slots for. Waits in line while every
    /// thread is busy.
    pub async fn sandboxed<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Runtime) -> R + Send + 'static,
    ) -> Result<R, pool::Lost> {
        let runtime = self.clone();
        self.inner.threads.run(move || f(&runtime)).await
    }

    /// Evaluation threads alive now, and the most counted alive at once so far.
    pub fn evaluation_threads(&self) -> (usize, usize) {
        self.inner.threads.counts()
    }

    /// Evaluate one job unless its module is suspended (evaluations queued behind the ones
    /// that tripped the suspension do not run), and count its outcome towards suspension.
    /// Blocking when it runs.
    fn suspended_or_run(&self, owner: &str, job: &PolicyJob) -> PolicyOutcome {
        let digest = &job.module.digest;
        if let Some(failure) = self.inner.suspensions.check(owner, digest) {
            return failed(failure, Usage::default());
        }
        let outcome = self.evaluate_policy_limited(&job.module, &job.input, job.limits);
        let config = &self.inner.config;
        if self.inner.suspensions.record(
            owner,
            digest,
            outcome.failure.as_ref(),
            config.suspend_after,
            config.suspension,
        ) {
            tracing::warn!(
                owner = %owner,
                module = %digest,
                seconds = config.suspension.as_secs(),
                "suspending a module that keeps exhausting its budget"
            );
        }
        outcome
    }

    fn owner_slots(&self, owner: &str) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self.inner.owner_slots.lock().unwrap();
        if slots.len() > 4096 {
            // Forget owners with nothing running, so the map stays small.
            slots.retain(|_, s| Arc::strong_count(s) > 1);
        }
        slots
            .entry(owner.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Semaphore::new(
                    self.inner
                        .config
                        .max_concurrent_evaluations_per_owner
                        .max(1),
                ))
            })
            .clone()
    }

    /// Run a module's `validate-config` export. `Ok(Err(msg))` is the module's own rejection,
    /// shown to the owner as is; `Err(failure)` means the module failed to answer.
    pub fn validate_config(
        &self,
        module: &Module,
        config: &str,
        now_ms: u64,
    ) -> Result<Result<(), String>, Failure> {
        let limits = self.inner.config.default_limits();
        self.validate_config_limited(module, config, now_ms, limits)
    }

    /// [`Runtime::validate_config`] under a module's own [`Limits`].
    pub fn validate_config_limited(
        &self,
        module: &Module,
        config: &str,
        now_ms: u64,
        limits: Limits,
    ) -> Result<Result<(), String>, Failure> {
        let max_output = self.inner.config.max_output_bytes;
        let (result, _usage) = self.run(now_ms, limits, |store| {
            let answer = match &module.pre {
                Pre::Policy(pre) => pre
                    .instantiate(&mut *store)?
                    .uma_policy_evaluator()
                    .call_validate_config(&mut *store, config)?,
                Pre::Claims(pre) => pre
                    .instantiate(&mut *store)?
                    .uma_policy_gatherer()
                    .call_validate_config(&mut *store, config)?,
            };
            if let Err(msg) = &answer
                && msg.len() > max_output
            {
                return Ok(Err(Failure::OutputTooLarge {
                    bytes: msg.len(),
                    limit_bytes: max_output,
                }));
            }
            Ok(Ok(answer))
        });
        result
    }

    /// Call a claims plugin. Blocking.
    pub fn call_claims_blocking(
        &self,
        module: &Module,
        call: &ClaimsCall,
        now_ms: u64,
    ) -> (Result<ClaimsAnswer, Failure>, Usage) {
        let limits = self.inner.config.default_limits();
        self.call_claims_limited(module, call, now_ms, limits)
    }

    /// Call a claims plugin under a module's own [`Limits`] (checked against the global
    /// maxima when the module was uploaded). Blocking.
    pub fn call_claims_limited(
        &self,
        module: &Module,
        call: &ClaimsCall,
        now_ms: u64,
        limits: Limits,
    ) -> (Result<ClaimsAnswer, Failure>, Usage) {
        let Pre::Claims(pre) = &module.pre else {
            return (
                Err(Failure::Instantiation {
                    message: "the module is a policy, not a claims plugin".into(),
                }),
                Usage::default(),
            );
        };
        let max_output = self.inner.config.max_output_bytes;
        let too_large = |bytes: usize| {
            (bytes > max_output).then_some(Failure::OutputTooLarge {
                bytes,
                limit_bytes: max_output,
            })
        };
        self.run(now_ms, limits, |store| {
            let instance = pre.instantiate(&mut *store)?;
            let g = instance.uma_policy_gatherer();
            let answer = match call {
                ClaimsCall::TokenFormats => {
                    let formats = g.call_token_formats(&mut *store)?;
                    if let Some(f) = too_large(formats.iter().map(|f| f.len()).sum()) {
                        return Ok(Err(f));
                    }
                    ClaimsAnswer::TokenFormats(formats)
                }
                ClaimsCall::VerifyToken {
                    format,
                    token,
                    config,
                    context,
                } => {
                    let ctx = v0_1::server_context(context);
                    let verified = g.call_verify_token(&mut *store, format, token, config, &ctx)?;
                    let size = match &verified {
                        Ok(claims) => v0_1::gathered_len(claims),
                        Err(e) => e.len(),
                    };
                    if let Some(f) = too_large(size) {
                        return Ok(Err(f));
                    }
                    match verified {
                        Ok(claims) => match v0_1::gathered_claims(claims) {
                            Ok(claims) => ClaimsAnswer::Verified(Ok(claims)),
                            Err(message) => return Ok(Err(Failure::InvalidOutput { message })),
                        },
                        Err(e) => ClaimsAnswer::Verified(Err(e)),
                    }
                }
                ClaimsCall::Start(interaction) => {
                    let step = g.call_start(&mut *store, &v0_1::interaction(interaction))?;
                    if let Some(f) = too_large(v0_1::step_len(&step)) {
                        return Ok(Err(f));
                    }
                    match v0_1::step(step) {
                        Ok(step) => ClaimsAnswer::Step(step),
                        Err(message) => return Ok(Err(Failure::InvalidOutput { message })),
                    }
                }
                ClaimsCall::Submit {
                    interaction,
                    state,
                    answers,
                } => {
                    let step = g.call_submit(
                        &mut *store,
                        &v0_1::interaction(interaction),
                        state,
                        &v0_1::answers(answers),
                    )?;
                    if let Some(f) = too_large(v0_1::step_len(&step)) {
                        return Ok(Err(f));
                    }
                    match v0_1::step(step) {
                        Ok(step) => ClaimsAnswer::Step(step),
                        Err(message) => return Ok(Err(Failure::InvalidOutput { message })),
                    }
                }
            };
            Ok(Ok(answer))
        })
    }

    /// For benchmarks only: evaluate repeatedly on one instance, to measure the call alone.
    /// The server never does this (security-lessons S6).
    #[doc(hidden)]
    pub fn bench_reused_instance(
        &self,
        module: &Module,
        input: &PolicyInput,
        f: impl FnOnce(&mut dyn FnMut()),
    ) {
        let Pre::Policy(pre) = &module.pre else {
            panic!("not a policy module")
        };
        let mut store = Store::new(
            &self.inner.engine,
            Sandbox::new(
                &self.inner.config,
                self.inner.config.max_module_memory_bytes,
                input.context.now_ms,
            ),
        );
        store.limiter(|s| s.limiter());
        store.set_fuel(u64::MAX).unwrap();
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = pre.instantiate(&mut store).unwrap();
        let request = v0_1::request(input);
        f(&mut || {
            instance
                .uma_policy_evaluator()
                .call_evaluate(&mut store, &request)
                .unwrap();
        });
    }

    /// Run `f` in a fresh store under every limit, and turn whatever goes wrong into a
    /// [`Failure`].
    fn run<R>(
        &self,
        now_ms: u64,
        limits: Limits,
        f: impl FnOnce(&mut Store<Sandbox>) -> wasmtime::Result<Result<R, Failure>>,
    ) -> (Result<R, Failure>, Usage) {
        let config = &self.inner.config;
        // Never more than the pool's slots hold, whatever the caller passed.
        let memory = limits
            .memory_bytes
            .min(config.max_module_memory_bytes.max(config.max_memory_bytes));
        let fuel = limits.fuel.min(config.max_fuel.max(config.fuel));
        let mut store = Store::new(&self.inner.engine, Sandbox::new(config, memory, now_ms));
        store.limiter(|s| s.limiter());
        // Fuel is set before instantiation so start functions are metered too.
        let _ = store.set_fuel(fuel);
        let ticks = config
            .deadline
            .as_nanos()
            .div_ceil(config.epoch_tick.as_nanos().max(1)) as u64;
        store.set_epoch_deadline(ticks.max(1) + 1);
        store.epoch_deadline_trap();
        store.set_hostcall_fuel(config.max_hostcall_bytes);

        let started = Instant::now();
        let result = f(&mut store);
        let elapsed = started.elapsed();
        let fuel_used = fuel - store.get_fuel().unwrap_or(0);

        let data = store.data_mut();
        data.collect_output();
        let result = match result {
            Ok(inner) => inner,
            Err(error) => Err(classify(&error, data, config, fuel)),
        };
        let data = store.into_data();
        let usage = Usage {
            fuel_used,
            elapsed,
            memory_bytes: data.limits().peak_memory,
            logs_dropped: data.logs_dropped,
            logs: data.logs,
        };
        (result, usage)
    }
}

/// The answer for a job whose outcome went missing (never expected; denies).
fn lost_evaluation() -> Failure {
    Failure::Trap {
        message: "the evaluation produced no outcome".into(),
    }
}

fn failed(failure: Failure, usage: Usage) -> PolicyOutcome {
    PolicyOutcome {
        decision: Decision::Deny {
            reason: failure.to_string(),
        },
        failure: Some(failure),
        usage,
    }
}

/// Name what stopped a guest.
fn classify(
    error: &wasmtime::Error,
    sandbox: &Sandbox,
    config: &RuntimeConfig,
    fuel: u64,
) -> Failure {
    if let Some(hit) = &sandbox.limits().hit {
        return hit.clone();
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::OutOfFuel { fuel },
        Some(Trap::Interrupt) => Failure::Deadline {
            millis: config.deadline.as_millis() as u64,
        },
        Some(Trap::StackOverflow) => Failure::StackOverflow,
        Some(trap) => {
            // A Rust guest's panic message comes just before the trap: on stderr, or logged at
            // `error` level by our SDK (which keeps WASI stdio out of its components). It is the
            // most useful thing to tell the owner.
            let lines: Vec<&str> = sandbox
                .logs
                .iter()
                .filter(|l| l.level == "stderr" || l.level == "error")
                .flat_map(|l| l.message.lines())
                .collect();
            let panic = lines
                .iter()
                .rposition(|l| l.contains("panicked at"))
                .map(|i| format!(" ({})", lines[i..].join(" ")));
            Failure::Trap {
                message: format!("{trap}{}", panic.unwrap_or_default()),
            }
        }
        None => {
            let message = format!("{error:#}");
            if message.contains("hostcall fuel")
                || message.contains("fuel") && message.contains("host")
            {
                Failure::OutputTooLarge {
                    bytes: config.max_hostcall_bytes + 1,
                    limit_bytes: config.max_hostcall_bytes,
                }
            } else {
                Failure::Trap { message }
            }
        }
    }
}

/// The engine configuration: Cranelift, the features of [`FEATURES`], fuel and epochs, and the
/// pooling allocator sized for `max_concurrent_evaluations`.
fn engine_config(config: &RuntimeConfig) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.strategy(wasmtime::Strategy::Cranelift);
    c.cranelift_opt_level(wasmtime::OptLevel::Speed);
    c.wasm_component_model(true);
    c.wasm_relaxed_simd(false);
    c.wasm_memory64(false);
    c.wasm_multi_memory(true);
    c.wasm_tail_call(true);
    c.wasm_simd(true);
    c.wasm_bulk_memory(true);
    // Proposals we do not use are off in the engine too, not only in ingest's validator
    // (security-lessons S7); the engine then refuses them even if a module reached it.
    c.wasm_features(
        wasmtime::WasmFeatures::THREADS
            | wasmtime::WasmFeatures::SHARED_EVERYTHING_THREADS
            | wasmtime::WasmFeatures::MEMORY64
            | wasmtime::WasmFeatures::GC
            | wasmtime::WasmFeatures::FUNCTION_REFERENCES
            | wasmtime::WasmFeatures::EXCEPTIONS
            | wasmtime::WasmFeatures::LEGACY_EXCEPTIONS
            | wasmtime::WasmFeatures::STACK_SWITCHING
            | wasmtime::WasmFeatures::CUSTOM_PAGE_SIZES
            | wasmtime::WasmFeatures::WIDE_ARITHMETIC
            | wasmtime::WasmFeatures::CM_ASYNC
            | wasmtime::WasmFeatures::CM_ASYNC_STACKFUL
            | wasmtime::WasmFeatures::CM_THREADING,
        false,
    );
    c.consume_fuel(true);
    c.epoch_interruption(true);
    c.max_wasm_stack(config.max_wasm_stack);

    let n = config.max_concurrent_evaluations.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n);
    // A component built by wit-component holds a few core instances (the main module, a
    // shim for lowered imports, its fixups) and usually one memory; interpreters bring more.
    pool.total_core_instances(n * 8);
    pool.max_core_instances_per_component(16);
    pool.total_memories(n * 4);
    pool.max_memories_per_component(4);
    pool.total_tables(n * 8);
    pool.max_tables_per_component(8);
    // Slots as large as the most memory a module may ask for; the per-store limiter enforces
    // each module's own cap.
    pool.max_memory_size(config.max_module_memory_bytes.max(config.max_memory_bytes));
    pool.table_elements(config.max_table_elements);
    pool.linear_memory_keep_resident(config.keep_resident_bytes);
    pool.table_keep_resident(config.keep_resident_bytes.min(64 << 10));
    // Where the kernel supports it, reset only the pages a guest actually dirtied.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    // Evaluations are synchronous: no fiber stacks (`async` is compiled in only because
    // wasmtime-wasi needs it), so none are reserved (security-lessons S7).
    pool.total_stacks(0);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}
