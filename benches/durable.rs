//! Durable runs per second: `cargo bench --bench durable`.
//!
//! A run here is what most flows are: an event comes in, the run waits, then
//! it sends a template. Every step goes through the durable store exactly as
//! in `flowc serve`: the event is committed to the inbox, claimed, its run
//! started and saved at its `delay`, claimed again when due, its send
//! recorded before and after the (recording, zero-latency) WhatsApp call, and
//! the run recorded as finished. Each "node" is the library's real service
//! ([`flowc::serve::Service`]) running its inbox and timer workers, with its
//! own store handle: on PostgreSQL its own connection pool and node name, so
//! nodes claim from each other exactly as separate processes would.
//!
//! The stores:
//! - SQLite: one node on a WAL file in a temporary folder;
//! - PostgreSQL with 1, 2 and 3 nodes on one database of a throwaway
//!   server on loopback (`tests/common/postgres.rs`; fsync off, as in the
//!   tests: the figures are the engine's and the protocol's, not the disk's).
//!
//! All of it runs in this one process on the same machine as the database,
//! so on two cores more nodes mostly share the same CPU: the figure shows
//! what the coordination costs, not how a cluster of machines scales.
//!
//! Figures per store: runs per second, from the first event committed until
//! the last run's send (less the runs' one-second `delay`), and how many
//! runs each node resumed. Run without `--bench` (as `cargo test
//! --all-targets` does), it makes one tiny pass as a smoke test instead.

#[path = "../tests/common/postgres.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use flowc::check::{Compiler, Program};
use flowc::providers::location::{OpenOptions, StoreLocation};
use flowc::providers::recording::Recorder;
use flowc::providers::{InboxEvent, Log, Secret, Store, SystemClock};
use flowc::runtime::{Engine, EngineLimits, Limits};
use flowc::serve::{Metrics, ServeOptions, Service};

const FLOW: &str = r#"
flow call_follow_up

on call.ended as call {
    delay 1s
    whatsapp.send_template(
        sender: "office",
        template: "follow_up",
        to: call.customer_phone,
        variables: [call.call_id],
    )
}
"#;

const CONFIG: &str = r#"
[senders.office]
phone_number_id = "106540352242922"
phone = "+4930901820"

[templates.follow_up]
language = "en"
category = "utility"
body = "About your call {{1}}: we are here if you need anything."
"#;

/// The run's `delay`, taken out of the elapsed time.
const DELAY: Duration = Duration::from_secs(1);

/// Logs nothing: the figure is the store's and the engine's.
struct Discard;

impl Log for Discard {
    fn log(&self, _flow: &str, _level: &str, _message: &str) {}
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs = if full { 5_000 } else { 50 };
    if !full {
        println!("quick pass (run `cargo bench --bench durable` for figures)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("no runtime: {error}");
            std::process::exit(2);
        }
    };
    let outcome =
        runtime.block_on(async {
            println!(
            "durable runs (event -> delay 1s -> send), {runs} runs per store, {} build, {} CPUs",
            if cfg!(debug_assertions) { "debug" } else { "release" },
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
            println!(
                "{:<22} {:>10} {:>10}   runs resumed per node",
                "store", "runs/s", "seconds"
            );
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let sqlite = StoreLocation::Sqlite(dir.path().join("flows.db"));
            measure("SQLite, 1 node", &sqlite, 1, runs).await?;
            if pg::skipped() {
                println!("PostgreSQL skipped (FLOWC_PG_TESTS=skip)");
                return Ok(());
            }
            for nodes in 1..=3 {
                let url = pg::fresh_database().await;
                let location = StoreLocation::Postgres(url);
                let name = format!(
                    "PostgreSQL, {nodes} node{}",
                    if nodes > 1 { "s" } else { "" }
                );
                measure(&name, &location, nodes, runs).await?;
            }
            Ok::<(), String>(())
        });
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn program() -> Result<Program, String> {
    let mut compiler = Compiler::new();
    compiler.add_source("bench.flow", FLOW);
    compiler.add_config("flow.toml", CONFIG);
    compiler.check().into_result().map_err(|e| e.to_string())
}

/// One node: a service on its own store handle, its workers running.
struct Node {
    recorder: Recorder,
    stop: tokio::sync::watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

async fn start_node(
    location: &StoreLocation,
    program: &Program,
) -> Result<(Node, Arc<dyn Store>), String> {
    let store = location
        .open(&OpenOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let recorder = Recorder::new();
    let engine = Engine::builder()
        .shared_store(store.clone())
        .clock(SystemClock)
        .whatsapp(recorder.whatsapp())
        .log(Discard)
        .limits(EngineLimits {
            // Pacing is not what is measured: every run has its own
            // customer, and the sender's limit is far above the rate.
            pacing: Limits {
                sender_per_second: 1_000_000.0,
                ..Limits::default()
            },
            ..EngineLimits::default()
        })
        .build();
    engine.load(program.clone()).map_err(|e| e.to_string())?;
    let mut options = ServeOptions::new(Secret::new("bench"), Secret::new("bench"));
    options.poll_interval = Duration::from_millis(100);
    let service = Service::new(
        engine,
        program.clone(),
        Arc::new(Metrics::default()),
        options,
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = vec![
        tokio::spawn(service.clone().inbox_worker(stopped.clone())),
        tokio::spawn(service.timer_worker(stopped)),
    ];
    Ok((
        Node {
            recorder,
            stop,
            workers,
        },
        store,
    ))
}

fn call_event(n: usize) -> InboxEvent {
    InboxEvent {
        id: format!("call_{n}"),
        event: serde_json::json!({
            "trigger": "call.ended",
            "fields": {
                "customer_phone": format!("+49151{n:08}"),
                "agent_name": "Jonas",
                "outcome": "no_answer",
                "ended_at": "2026-11-25T10:00:00Z",
                "call_id": format!("call_{n}"),
            },
        }),
        received_at: Utc::now(),
    }
}

async fn measure(
    name: &str,
    location: &StoreLocation,
    nodes: usize,
    runs: usize,
) -> Result<(), String> {
    let program = program()?;
    let mut started = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..nodes {
        let (node, store) = start_node(location, &program).await?;
        started.push(node);
        stores.push(store);
    }
    // The events arrive in batches of 100, as the webhook writer commits
    // them, spread over the nodes.
    let t0 = Instant::now();
    let events: Vec<InboxEvent> = (0..runs).map(call_event).collect();
    for (i, batch) in events.chunks(100).enumerate() {
        stores[i % nodes]
            .enqueue_events(batch.to_vec())
            .await
            .map_err(|e| e.to_string())?;
    }
    let deadline = t0 + Duration::from_secs(600);
    loop {
        let sent: usize = started.iter().map(|n| n.recorder.templates().len()).sum();
        if sent >= runs {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{name}: {sent} of {runs} runs sent in 10 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t0.elapsed();
    let busy = elapsed.saturating_sub(DELAY).as_secs_f64().max(1e-3);
    let per_node: Vec<String> = started
        .iter()
        .map(|n| n.recorder.templates().len().to_string())
        .collect();
    println!(
        "{name:<22} {:>10.0} {:>10.2}   {}",
        runs as f64 / busy,
        elapsed.as_secs_f64(),
        per_node.join(" / ")
    );
    for node in started {
        let _ = node.stop.send(true);
        for worker in node.workers {
            let _ = worker.await;
        }
    }
    Ok(())
}
