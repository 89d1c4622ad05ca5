//! `tillsyn run`: the long-running service. It scans each source on its own
//! schedule, serves `/metrics`, `/healthz` and `/readyz`, reloads its config on
//! SIGHUP and stops cleanly on SIGTERM or SIGINT.
//!
//! Shape (after mini-redis): [`run`] loads the config, opens the store, binds the
//! HTTP listener, then starts one task per source ([`scheduler`]; with
//! `[fleet]`, [`fleet`], which shares the source's units with the other
//! instances on the store), one for the monthly report ([`reporting`]) and the
//! HTTP server ([`http`]), and waits for signals. The running config is a
//! [`tokio::sync::watch`] value: a reload swaps it, and each source task picks up
//! its new schedule and rules after the scan it may be running. A reload that does
//! not check out changes nothing, is logged with its reasons and shows as
//! `tillsyn_config_last_reload_successful 0`.
//!
//! Shutdown is a [`Stop`] flag shared by every scan: it asks connectors to stop,
//! and a scan that has not stopped `shutdown_grace_seconds` later is cut off and
//! recorded as failed (`cancelled`), never as finished. The store is written in
//! transactions, so it is consistent whenever the process ends.
//!
//! systemd: `READY=1` once the listener is bound and every source is scheduled,
//! `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` at shutdown, and
//! `WATCHDOG=1` at half the `WatchdogSec=` interval, from a task that also checks
//! the store answers, so a wedged store stops the pings.

pub mod fleet;
pub mod http;
pub mod reporting;
pub mod scheduler;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use tillsyn_app::metrics::{KnownSeries, Metrics, MetricsError};
use tillsyn_app::runner::{BuildError, RunError, Source, Stop, with_store};
use tillsyn_config::{self as config, ConfigErrors};
use tillsyn_core::schedule::Schedule;
use tillsyn_rules::RuleError;
use tillsyn_store::{Store, StoreError};

use tillsyn_app::engine::Engine;

/// Why the daemon could not start (once running, problems are logged and
/// counted, not returned).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// Rules did not compile.
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// A source could not be built.
    #[error("source {name:?}: {source}")]
    Build {
        /// Source name.
        name: String,
        /// Why.
        source: BuildError,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store could not be read.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Metrics could not be set up.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The configured `daemon.listen`.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The pseudonym key could not be read or made.
    #[error(transparent)]
    Key(#[from] tillsyn_app::privacy::KeyError),
    /// The fleet's lease table could not be reached.
    #[error(transparent)]
    Fleet(#[from] tillsyn_store::fleet::FleetError),
}

impl From<tillsyn_app::engine::EngineError> for DaemonError {
    fn from(error: tillsyn_app::engine::EngineError) -> DaemonError {
        match error {
            tillsyn_app::engine::EngineError::Key(error) => DaemonError::Key(error),
            tillsyn_app::engine::EngineError::Rules(error) => DaemonError::Rules(error),
        }
    }
}

impl DaemonError {
    /// Bounded kind, for logs that must not quote the config.
    pub fn kind(&self) -> &'static str {
        match self {
            DaemonError::Config(_) => "config",
            DaemonError::Rules(_) => "rules",
            DaemonError::Build { .. } => "source_build",
            DaemonError::Store(error) => error.kind(),
            DaemonError::Run(_) => "store",
            DaemonError::Metrics(_) => "metrics",
            DaemonError::Listen { .. } => "listen",
            DaemonError::Signals(_) => "signals",
            DaemonError::Key(_) => "pseudonym_key",
            DaemonError::Fleet(_) => "fleet",
        }
    }
}

/// One source as the daemon runs it.
#[derive(Debug)]
pub struct ScheduledSource {
    /// The connector.
    pub source: Source,
    /// When it is scanned.
    pub schedule: Schedule,
    /// How long one scan may take.
    pub timeout: std::time::Duration,
    /// [`tillsyn_config::SourceConfig::fingerprint`].
    pub settings: u64,
}

/// A config made ready to run: rules compiled, sources built.
pub struct Loaded {
    /// The config, built.
    pub engine: Engine,
    /// Sources by name.
    pub sources: BTreeMap<String, Arc<ScheduledSource>>,
    /// The metric series this config defines.
    pub known: KnownSeries,
}

impl Loaded {
    /// Load, check and build everything `path` names. Reads credential files.
    pub fn load(path: &Path) -> Result<Loaded, DaemonError> {
        let config = config::load(path)?;
        for warning in &config.warnings {
            tracing::warn!(
                line = warning.line.unwrap_or(0),
                warning = %warning.message,
                "The config uses a key renamed in this release."
            );
        }
        let engine = Engine::new(config)?;
        let mut sources = BTreeMap::new();
        for source in &engine.config().sources {
            let built = engine.source(source).map_err(|error| DaemonError::Build {
                name: source.name.clone(),
                source: error,
            })?;
            sources.insert(
                source.name.clone(),
                Arc::new(ScheduledSource {
                    source: built,
                    schedule: source.schedule.clone(),
                    timeout: source.scan_timeout,
                    settings: source.fingerprint(),
                }),
            );
        }
        let known = KnownSeries::from_config(engine.config(), Utc::now());
        Ok(Loaded {
            engine,
            sources,
            known,
        })
    }
}

/// What the daemon's tasks share.
pub struct Shared {
    /// The findings store.
    pub store: Arc<Mutex<Store>>,
    /// The metrics.
    pub metrics: Metrics,
    /// Set at shutdown; every scan watches it.
    pub stop: Stop,
}

/// Run the daemon with the config at `path` until SIGTERM or SIGINT, serving
/// its endpoints on `listen` when given, else on `[daemon] listen`.
pub async fn run(path: PathBuf, listen: Option<SocketAddr>) -> Result<(), DaemonError> {
    let mut hangups = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut terminations = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupts = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;

    let loaded = tokio::task::spawn_blocking({
        let path = path.clone();
        move || Loaded::load(&path)
    })
    .await
    .map_err(|error| RunError::Worker(error.to_string()))??;
    let listen = listen.unwrap_or(loaded.engine.config().daemon.listen);
    let grace = Duration::from_secs(loaded.engine.config().daemon.shutdown_grace_seconds);
    let store_engine = loaded.engine.clone();
    let store = tokio::task::spawn_blocking(move || store_engine.open_store())
        .await
        .map_err(|error| RunError::Worker(error.to_string()))??;
    let fleet = match (&loaded.engine.config().fleet, &loaded.engine.config().store) {
        (Some(settings), Some(store_config)) => {
            let joined = tillsyn_store::fleet::Fleet::connect(store_config, store.holder()).await?;
            tracing::info!(
                instance = %store.holder(),
                lease_seconds = settings.lease_seconds,
                "Sharing the work with the other instances on the store."
            );
            Some(Arc::new(fleet::FleetShared::new(joined, settings.clone())))
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        store: Arc::new(Mutex::new(store)),
        metrics: Metrics::new()?,
        stop: Stop {
            flag: Default::default(),
            grace,
        },
    });
    let history = restore_metrics(&shared, &loaded).await?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DaemonError::Listen {
            address: listen,
            source,
        })?;
    let (config_sender, config_receiver) = watch::channel(Arc::new(loaded));
    let server = tokio::spawn(http::serve(
        listener,
        shared.clone(),
        config_receiver.clone(),
    ));

    let mut sources = JoinSet::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let starter = Starter {
        shared: shared.clone(),
        config: config_receiver.clone(),
        fleet,
    };
    starter.start(&history, &mut sources, &mut started);
    if let Some(fleet) = &starter.fleet {
        sources.spawn(fleet::gauges_loop(
            shared.clone(),
            fleet.clone(),
            config_receiver.clone(),
        ));
    }
    sources.spawn(reporting::report_loop(
        shared.clone(),
        config_receiver.clone(),
    ));
    tracing::info!(
        address = %listen,
        sources = started.len(),
        "tillsyn is running."
    );
    notify(Notice::Ready);
    let watchdog = sd_notify::watchdog_enabled()
        .map(|interval| tokio::spawn(watchdog(shared.clone(), interval / 2)));

    loop {
        tokio::select! {
            _ = hangups.recv() => {
                notify(Notice::Reloading);
                reload(&path, &shared, &config_sender).await;
                starter.start(&BTreeMap::new(), &mut sources, &mut started);
                notify(Notice::Ready);
            }
            _ = terminations.recv() => break,
            _ = interrupts.recv() => break,
        }
    }

    tracing::info!("Stopping: in-flight scans are asked to stop.");
    notify(Notice::Stopping);
    shared.stop.flag.cancel();
    // A scan stops by itself or is cut off after `grace`; the extra seconds
    // cover recording it as failed.
    let deadline = tokio::time::sleep(grace + Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = sources.join_next() => if next.is_none() { break },
            () = &mut deadline => {
                tracing::warn!("Scans did not stop in time; exiting without them.");
                sources.abort_all();
                break;
            }
        }
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    server.abort();
    tracing::info!("Stopped.");
    Ok(())
}

/// Per source, whether a scheduled run was missed while the daemon was down
/// (or the source was never scanned): those scan once at start.
type History = BTreeMap<String, bool>;

async fn restore_metrics(shared: &Arc<Shared>, loaded: &Loaded) -> Result<History, DaemonError> {
    let names: Vec<String> = loaded.sources.keys().cloned().collect();
    let exceptions = loaded.engine.rules().exceptions().clone();
    let rows = with_store(&shared.store, move |store| {
        // The exceptions as configured now, before anything is counted.
        store.mark_exceptions(&exceptions, None)?;
        let mut rows = Vec::new();
        for name in names {
            let last = store.last_scan(&name)?;
            let state = store.source_state(&name)?;
            rows.push((name, last, state));
        }
        Ok((rows, store.open_summary(Utc::now())?))
    })
    .await?;
    let (rows, open) = rows;
    let now = Utc::now();
    shared.metrics.configure(&loaded.known, &open, now);
    let zone = loaded.engine.config().daemon.timezone.0;
    let mut history = History::new();
    for (name, last, state) in rows {
        shared.metrics.restore_source(&name, &state);
        let due = match (&last, loaded.sources.get(&name)) {
            (None, _) => true,
            (Some(row), Some(source)) => source.schedule.missed_since(row.started_at, now, zone),
            (Some(_), None) => false,
        };
        history.insert(name, due);
    }
    Ok(history)
}

/// What starts the per-source tasks, at start and after a reload.
struct Starter {
    shared: Arc<Shared>,
    config: watch::Receiver<Arc<Loaded>>,
    /// With `[fleet]`: the sources' units are shared with other instances.
    fleet: Option<Arc<fleet::FleetShared>>,
}

impl Starter {
    /// Start a task for every source that has none yet.
    fn start(&self, history: &History, tasks: &mut JoinSet<()>, started: &mut BTreeSet<String>) {
        let names: Vec<String> = self.config.borrow().sources.keys().cloned().collect();
        for name in names {
            if started.contains(&name) {
                continue;
            }
            match &self.fleet {
                Some(fleet) => {
                    tasks.spawn(fleet::source_loop(
                        name.clone(),
                        self.shared.clone(),
                        fleet.clone(),
                        self.config.clone(),
                    ));
                }
                None => {
                    // At start, `history` says whether a run was missed; a
                    // source added by a reload is not in it and scans at once,
                    // as a new source does at start.
                    let catch_up = history.get(&name).copied().unwrap_or(true);
                    tasks.spawn(scheduler::source_loop(
                        name.clone(),
                        self.shared.clone(),
                        self.config.clone(),
                        catch_up,
                    ));
                }
            }
            started.insert(name);
        }
    }
}

async fn reload(path: &Path, shared: &Arc<Shared>, sender: &watch::Sender<Arc<Loaded>>) {
    let loaded = tokio::task::spawn_blocking({
        let path = path.to_path_buf();
        move || Loaded::load(&path)
    })
    .await;
    let loaded = match loaded {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(error)) => {
            shared.metrics.reload_failed();
            // A config problem quotes the operator's values (a recipient's
            // address, a bind DN): the log gets where the problems are, and
            // `check-config` prints them in full to whoever runs it.
            match &error {
                DaemonError::Config(errors) => {
                    let lines: Vec<String> = errors
                        .issues
                        .iter()
                        .map(|issue| issue.line.map_or("-".to_owned(), |line| line.to_string()))
                        .collect();
                    tracing::warn!(
                        problems = errors.issues.len(),
                        lines = %lines.join(", "),
                        "Config reload refused; the previous config keeps running. Run `tillsyn check-config --config {}` for the details.",
                        path.display()
                    );
                }
                other => tracing::warn!(
                    error_kind = other.kind(),
                    "Config reload refused; the previous config keeps running. Run `tillsyn check-config --config {}` for the details.",
                    path.display()
                ),
            }
            return;
        }
        Err(error) => {
            shared.metrics.reload_failed();
            tracing::warn!(error = %error, "Config reload failed; the previous config keeps running.");
            return;
        }
    };
    {
        let running = sender.borrow();
        let store_url =
            |config: &tillsyn_config::Config| config.store.as_ref().map(|store| store.url.clone());
        if running.engine.config().daemon.listen != loaded.engine.config().daemon.listen
            || running.engine.config().daemon.state_dir != loaded.engine.config().daemon.state_dir
            || store_url(running.engine.config()) != store_url(loaded.engine.config())
            || running.engine.config().fleet != loaded.engine.config().fleet
        {
            tracing::warn!(
                "daemon.listen, daemon.state_dir, [store] and [fleet] take effect at the next restart; the rest of the config is reloaded."
            );
        }
    }
    let exceptions = loaded.engine.rules().exceptions().clone();
    let open = with_store(&shared.store, move |store| {
        store.mark_exceptions(&exceptions, None)?;
        store.open_summary(Utc::now())
    })
    .await;
    match open {
        Ok(open) => shared.metrics.configure(&loaded.known, &open, Utc::now()),
        Err(error) => {
            shared.metrics.reload_failed();
            tracing::warn!(error = %error, "Config reload failed reading the store; the previous config keeps running.");
            return;
        }
    }
    tracing::info!(
        sources = loaded.sources.len(),
        rules = loaded.engine.config().rules.len(),
        "Config reloaded."
    );
    sender.send_replace(Arc::new(loaded));
}

async fn watchdog(shared: Arc<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        ticks.tick().await;
        // Ping only while the store answers: a wedged store should get the
        // service restarted, not kept alive.
        if with_store(&shared.store, |store| store.schema_version())
            .await
            .is_ok()
        {
            notify(Notice::Watchdog);
        }
    }
}

/// What the daemon tells systemd.
#[derive(Debug, Clone, Copy)]
enum Notice {
    Ready,
    Reloading,
    Stopping,
    Watchdog,
}

/// Tell systemd, without waiting: a notify socket whose queue is full blocks
/// the sender, so the messages go through a bounded queue to a thread of their
/// own, and are dropped (not waited for) when that queue is full.
fn notify(notice: Notice) {
    static QUEUE: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<Notice>>> =
        std::sync::OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        std::env::var_os("NOTIFY_SOCKET")?;
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Notice>(16);
        let spawned = std::thread::Builder::new()
            .name("sd-notify".into())
            .spawn(move || {
                for notice in receiver {
                    let states: &[NotifyState<'_>] = match notice {
                        Notice::Ready => &[NotifyState::Ready, NotifyState::Status("running")],
                        Notice::Reloading => &[NotifyState::Reloading],
                        Notice::Stopping => &[NotifyState::Stopping],
                        Notice::Watchdog => &[NotifyState::Watchdog],
                    };
                    if let Err(error) = sd_notify::notify(states) {
                        tracing::debug!(error = %error, "Could not notify systemd.");
                    }
                }
            });
        spawned.ok().map(|_| sender)
    });
    if let Some(queue) = queue
        && queue.try_send(notice).is_err()
    {
        tracing::debug!("systemd notification dropped: the queue is full.");
    }
}
