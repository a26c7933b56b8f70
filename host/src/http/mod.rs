//! HTTP surface: application state, the router, middleware (trailing-slash normalisation,
//! protocol-shaped errors, tracing) and serving with graceful shutdown.

pub mod admin;
pub mod error;
pub mod extract;
mod handlers;
pub mod openapi;
pub mod owner;
pub mod ratelimit;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::routing::{get, post};
use std::time::Duration;
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

use axum::http::StatusCode;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::Config;
use crate::keys::Keys;
use crate::oauth::clients::SecretHasher;
use crate::runtime::Runtime;
use crate::store::{SledStore, Store, unix_now};
use crate::uma::discovery::paths;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub keys: Arc<Keys>,
    pub secrets: Arc<SecretHasher>,
    /// The key permission tickets are sealed with.
    pub tickets: Arc<crate::uma::ticket::TicketSeal>,
    /// The Wasm plugin runtime every policy and claims plugin runs in.
    pub runtime: Runtime,
    /// What owners' modules used, shown in their metadata.
    pub usage: Arc<crate::policy::UsageBook>,
    /// Per-client rate limiter; `None` when `rate_limit_per_sec` is 0.
    pub limiter: Option<ratelimit::Limiter>,
}

impl AppState {
    /// Opens the sled store in `config.data_dir`, loads (or creates) the signing keys, and
    /// applies the clients and users declared in the config.
    pub async fn open(config: Config) -> anyhow::Result<AppState> {
        let store: Arc<dyn Store> = Arc::new(SledStore::open_with_cache(
            &config.data_dir,
            config.store_cache_bytes,
        )?);
        Self::with_store(config, store).await
    }

    /// Like [`AppState::open`] on any [`Store`] backend.
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<AppState> {
        let keys = Keys::load(store.clone(), config.max_signed_token_lifetime_secs()).await?;
        let secrets = SecretHasher::load(store.as_ref()).await?;
        let tickets = crate::uma::ticket::TicketSeal::load(store.as_ref()).await?;
        let mut runtime_config = config.runtime.clone();
        if runtime_config.cache_dir.is_none() {
            runtime_config.cache_dir = Some(config.data_dir.join("compiled"));
        }
        let runtime = Runtime::new(runtime_config)?;
        let limiter = ratelimit::Limiter::new(config.rate_limit_per_sec, config.rate_limit_burst);
        let state = AppState {
            limiter,
            config: Arc::new(config),
            store,
            keys: Arc::new(keys),
            secrets: Arc::new(secrets),
            tickets: Arc::new(tickets),
            runtime,
            usage: Arc::default(),
        };
        crate::oauth::clients::apply_config(&state, &state.config.clients).await?;
        crate::oauth::users::apply_config(&state, &state.config.users).await?;
        Ok(state)
    }
}

/// The router of every endpoint, mounted under the issuer's path.
pub fn router(state: AppState) -> Router {
    use handlers as h;
    let base = state.config.base_path().to_owned();
    let api = Router::new()
        .route("/healthz", get(h::healthz))
        .route(openapi::PATH, get(openapi::serve))
        .route(paths::UMA2_CONFIGURATION, get(h::discovery))
        .route(paths::OAUTH_AS_METADATA, get(h::discovery))
        .route(paths::JWKS, get(h::jwks))
        .route(
            paths::AUTHORIZE,
            get(h::authorize_page).post(h::authorize_submit),
        )
        .route(paths::TOKEN, post(h::token))
        .route(paths::REVOKE, post(h::revoke))
        .route(paths::INTROSPECT, post(h::introspect))
        .route(
            paths::RESOURCE_SET,
            get(h::list_resources).post(h::create_resource),
        )
        .route(
            &format!("{}/{{id}}", paths::RESOURCE_SET),
            get(h::read_resource)
                .put(h::update_resource)
                .delete(h::delete_resource),
        )
        .route(paths::PERMISSION, post(h::permission))
        .route(
            paths::CLAIMS_INTERACTION,
            get(h::claims_page).post(h::claims_submit),
        )
        .route(paths::REGISTER, post(h::register))
        .nest("/admin", admin::router())
        .nest("/owner", owner::router())
        .fallback(h::not_found);
    let app = if base.is_empty() {
        api
    } else {
        // RFC 8414 §3 places the metadata at /.well-known/oauth-authorization-server{path}.
        Router::new()
            .nest(&base, api)
            .route(
                &format!("{}{base}", paths::OAUTH_AS_METADATA),
                get(h::discovery),
            )
            .fallback(h::not_found)
    };
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    app.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        timeout,
    ))
    .layer(axum::middleware::from_fn(error::protocol_errors))
    .layer(axum::middleware::from_fn_with_state(
        state.limiter.clone(),
        ratelimit::limit,
    ))
    .layer(
        TraceLayer::new_for_http()
            // Method and path only: a query string may carry a token a client misplaced.
            .make_span_with(|req: &Request| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            })
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
    .with_state(state)
}

/// The router wrapped so that `/token/` is answered like `/token`, without a redirect.
pub fn app(state: AppState) -> NormalizePath<Router> {
    NormalizePathLayer::trim_trailing_slash().layer(router(state))
}

/// Native TLS: the certificate chain and key from the configuration, served with rustls.
mod tls {
    use std::path::Path;
    use std::sync::Arc;

    use anyhow::Context;
    use axum_server::tls_rustls::RustlsConfig;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<RustlsConfig> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .with_context(|| format!("reading the TLS certificate chain {}", cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!("{} holds no PEM certificate", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading the TLS private key {}", key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the TLS certificate and key do not fit together")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(RustlsConfig::from_config(Arc::new(config)))
    }
}

/// Serves the server described by `config` on `listener` until `shutdown` completes, then
/// finishes in-flight requests and closes the store.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::open(config).await?;
    serve_state(state, listener, shutdown).await
}

/// [`serve`] with an already opened state.
pub async fn serve_state(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(issuer = %state.config.issuer, addr = %listener.local_addr()?, "serving");
    let store = state.store.clone();
    let limiter = state.limiter.clone();
    let pruner = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Some(l) = &limiter {
                l.forget_idle();
            }
            if let Err(e) = store.prune_expired(unix_now()).await {
                tracing::warn!(error = %e, "pruning expired objects failed");
            }
        }
    });
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let tls = match (&state.config.tls_cert_file, &state.config.tls_key_file) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    // Connect info: the rate limiter falls back to the peer address.
    let svc = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(app(state));
    let result = match tls {
        Some(tls) => {
            // axum-server: handshakes run concurrently, off the accept loop.
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(grace));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, tls)?
                .handle(handle)
                .serve(svc)
                .await
        }
        None => {
            let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
            // Nagle's algorithm off, as axum-server does for TLS: an answer longer than one
            // segment (a large RPT) would otherwise hold its last, partial segment until the
            // client acknowledges the rest, which a delayed ACK stretches to tens of ms.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "setting TCP_NODELAY failed");
                }
            });
            let server = axum::serve(listener, svc).with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stopping.send(());
            });
            // Graceful shutdown waits for in-flight requests; a stalled one must not keep the
            // process alive forever.
            let deadline = async move {
                if stopped.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                r = server => r,
                () = deadline => {
                    tracing::warn!(?grace, "in-flight requests did not finish in time; closing");
                    Ok(())
                }
            }
        }
    };
    pruner.abort();
    let _ = pruner.await;
    result?;
    tracing::info!("stopped");
    Ok(())
}
