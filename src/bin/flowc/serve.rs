//! `flowc serve`: the webhook service over a durable store: a SQLite file
//! on one machine, or one PostgreSQL database shared by several nodes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use flowc::providers::console::Console;
use flowc::providers::location::OpenOptions;
use flowc::providers::setup::providers_from_config;
use flowc::providers::{Secret, SystemClock};
use flowc::runtime::{Engine, EngineLimits};
use flowc::serve::{Metrics, ServeOptions, Service};

use crate::check::{checked_program, usage_error};
use crate::store_args::store_location;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The project configuration; by default the flow.toml next to the flows.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The store that keeps events, waiting runs and sends: a SQLite file
    /// (`flows.db`, `sqlite:flows.db`) or a PostgreSQL URL
    /// (`postgres://USER@HOST/DB`) shared by several nodes; by default
    /// `[store]` of flow.toml, else flows.db next to flow.toml.
    #[arg(long, value_name = "URL", env = "FLOWC_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Where `whatsapp.download_media` saves the files customers send; by
    /// default the folder media next to flow.toml.
    #[arg(long, value_name = "DIR")]
    media_dir: Option<PathBuf>,
    /// Print sends instead of making them, whatever flow.toml says.
    #[arg(long)]
    dry_run: bool,
    /// How long a run being worked on is kept from other workers (e.g. 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    lease: String,
    /// How long the ids of handled webhook events are kept, to recognise
    /// WhatsApp's redeliveries (it retries for up to about a week); older
    /// ones are pruned every hour. At least 7d.
    #[arg(long, value_name = "DURATION", default_value = "14d")]
    keep_events: String,
    /// Log lines as text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// .flow files, or folders to search for them.
    #[arg(required = true, value_name = "FLOWS")]
    flows: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(args: ServeArgs) -> ExitCode {
    init_tracing(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(serve(args))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOWC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn secret(variable: &str) -> Result<Secret, String> {
    Secret::from_env(variable).map_err(|e| format!("{e}: flowc serve needs it"))
}

async fn serve(args: ServeArgs) -> ExitCode {
    let (project, program) = match checked_program(
        &args.flows,
        args.config.as_deref(),
        "the service did not start",
    ) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    let (app_secret, verify_token) =
        match (secret("FLOWC_APP_SECRET"), secret("FLOWC_VERIFY_TOKEN")) {
            (Ok(a), Ok(v)) => (a, v),
            (Err(e), _) | (_, Err(e)) => return usage_error(&e),
        };
    let lease = match duration_arg("--lease", &args.lease, "5m") {
        Ok(lease) => lease,
        Err(code) => return code,
    };
    let keep_events = match duration_arg("--keep-events", &args.keep_events, "14d") {
        Ok(keep) if keep >= chrono::Duration::days(7) => keep,
        Ok(_) => {
            return usage_error(&format!(
                "--keep-events: {} is shorter than WhatsApp's redelivery window \
                 (up to about a week), so a redelivered webhook could be handled twice; \
                 use at least 7d",
                args.keep_events
            ))
        }
        Err(code) => return code,
    };
    let config_dir = project_dir(&project);
    let metrics = Arc::new(Metrics::default());
    let media_dir = args
        .media_dir
        .clone()
        .unwrap_or_else(|| config_dir.join("media"));
    let engine = match project_engine(
        &program,
        &config_dir,
        args.store.as_deref(),
        lease,
        args.dry_run,
        |builder| builder.media_dir(media_dir).observer(metrics.clone()),
    )
    .await
    {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let mut options = ServeOptions::new(app_secret, verify_token);
    options.events_token = Secret::from_env("FLOWC_EVENTS_TOKEN").ok();
    options.keep_events = Some(keep_events);
    let service = Service::new(engine, program, metrics, options);
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => return usage_error(&format!("cannot listen on {}: {e}", args.listen)),
    };
    match flowc::serve::serve(service, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the server failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// The value of a duration flag such as `--lease 5m`, or the usage error
/// that names the flag.
pub fn duration_arg(flag: &str, text: &str, example: &str) -> Result<chrono::Duration, ExitCode> {
    flowc::duration::parse(text)
        .and_then(|ms| i64::try_from(ms).ok())
        .map(chrono::Duration::milliseconds)
        .ok_or_else(|| {
            usage_error(&format!(
                "{flag}: \"{text}\" is not a duration such as {example}"
            ))
        })
}

/// The folder of the project's flow.toml.
pub fn project_dir(project: &flowc::project::Project) -> PathBuf {
    project
        .config
        .as_deref()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The engine `flowc serve` and `flowc campaign` run flows on: the store
/// (`store_flag`, else `[store]`, else flows.db next to flow.toml) with
/// `lease`, the system clock, the console for notifications and logs, the
/// providers of flow.toml (the console for every sender with `dry_run`),
/// pacing from `[limits]`, `[conversations]`. `configure` adds what one
/// command needs; the program is loaded.
pub async fn project_engine(
    program: &flowc::check::Program,
    config_dir: &std::path::Path,
    store_flag: Option<&str>,
    lease: chrono::Duration,
    dry_run: bool,
    configure: impl FnOnce(flowc::runtime::EngineBuilder) -> flowc::runtime::EngineBuilder,
) -> Result<Engine, ExitCode> {
    let location = store_location(store_flag, Some(program.config()), config_dir)
        .map_err(|error| usage_error(&error))?;
    let options = OpenOptions {
        lease,
        pool_size: program.config().store.pool_size,
    };
    let store = crate::store_args::open(&location, &options)
        .await
        .map_err(|error| usage_error(&error))?;
    tracing::info!(store = %location, shared = location.is_shared(), "store open");
    let pacing = program
        .config()
        .limits
        .pacing()
        .map_err(|error| usage_error(&format!("flow.toml [limits]: {error}")))?;
    let console = Arc::new(Console::stdout());
    let mut builder = Engine::builder()
        .shared_store(store)
        .clock(SystemClock)
        .notify(console.clone())
        .log(console.clone())
        .replies_start_flows(program.config().conversations.replies_start_flows)
        .limits(EngineLimits {
            run_lease: lease,
            pacing,
            ..EngineLimits::default()
        });
    if dry_run {
        builder = builder.whatsapp(console.clone());
    } else {
        let providers = providers_from_config(program.config(), config_dir, console.clone())
            .map_err(|error| usage_error(&error))?;
        tracing::info!(live_senders = ?providers.live_senders, live_assistants = ?providers.live_assistants, "providers ready");
        builder = builder.whatsapp(providers.whatsapp).ai(providers.ai);
    }
    let engine = configure(builder).build();
    engine
        .load(program.clone())
        .map_err(|error| usage_error(&error))?;
    Ok(engine)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
