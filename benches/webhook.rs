//! How many WhatsApp webhook events `flowc serve` takes in per second:
//! `cargo bench --bench webhook`.
//!
//! The server is the library's real service ([`flowc::serve::serve`]) over a
//! SQLite store in a temporary folder, exactly as `flowc serve` builds it
//! (multi-threaded tokio runtime, WAL, `synchronous=NORMAL`, tracing at
//! `info` like the binary's default), with recording providers instead of
//! the Cloud API and one flow on `whatsapp.message_received` that logs a
//! line. It runs in its own process, so the memory figure is the server's
//! alone: this binary starts itself again with `FLOWC_WEBHOOK_BENCH_SERVER`
//! set, and that copy serves until its stdin closes.
//!
//! The client posts signed payloads (`X-Hub-Signature-256`, HMAC-SHA256 of
//! the body with the app secret, as Meta signs them) over keep-alive HTTP/1.1
//! connections on loopback, 32 at once. It is a minimal hand-written HTTP
//! client so that it takes as little of the shared CPU as possible; the
//! payloads and their signatures are made before the clock starts. Every
//! message has its own id, except every 50th request, which delivers an
//! earlier payload again (a duplicate the inbox must recognise).
//!
//! Figures:
//!
//! - **accepted**: requests answered 200 per second, each answered only after
//!   its event is committed to the SQLite inbox (durable: it survives the
//!   process being killed). Flows run meanwhile, as they would in service.
//! - **processed**: events whose runs have been started and finished (the
//!   inbox drained), per second, from the first request to an empty inbox.
//! - latency p50/p99 of the accepted requests, as the client sees them.
//! - the server's resident memory (`VmRSS` now, `VmHWM` peak).
//!
//! Run without `--bench` (as `cargo test --all-targets` does), it makes one
//! tiny pass as a smoke test instead.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowc::check::Compiler;
use flowc::providers::recording::Recorder;
use flowc::providers::sqlite::SqliteStore;
use flowc::providers::{Log, Secret, SystemClock};
use flowc::runtime::Engine;
use flowc::serve::webhook::signature_header;
use flowc::serve::{Metrics, ServeOptions, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Set (to the project folder) in the copy of this binary that serves.
const SERVER_ENV: &str = "FLOWC_WEBHOOK_BENCH_SERVER";
const APP_SECRET: &str = "bench-app-secret";
const PHONE_NUMBER_ID: &str = "106540352242922";
/// How many customers write: most messages fall in an open 24-hour window,
/// as in service, and the first of each starts a conversation.
const CUSTOMERS: usize = 500;
/// Every this many requests, an earlier payload is delivered again.
const DUPLICATE_EVERY: usize = 50;

const FLOWS: &str = r#"
flow bench_log
on whatsapp.message_received as msg {
    log("message {msg.message_id} from {msg.phone}: {msg.text}")
}
"#;

const CONFIG: &str = r#"
[senders.office]
phone_number_id = "106540352242922"
phone = "+4930901820"
"#;

fn main() {
    if let Some(dir) = std::env::var_os(SERVER_ENV) {
        std::process::exit(server(Path::new(&dir)));
    }
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        println!("quick pass (run `cargo bench --bench webhook` for figures)");
    }
    println!(
        "flowc serve webhook benchmark: {} build, {} CPUs available",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (warmup, mut events, connections) = if full {
        (5_000, 100_000, 32)
    } else {
        (0, 200, 4)
    };
    // `FLOWC_BENCH_EVENTS=N` measures N requests instead, e.g. under a
    // profiler.
    if let Some(n) = std::env::var("FLOWC_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        events = n;
    }
    let dir = tempfile::TempDir::new().expect("a temporary folder");
    let mut server = Server::start(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(run(&server.address, warmup, events, connections));
    let memory = server.memory();
    server.stop();
    match result {
        Ok(report) => report.print(connections, &memory),
        Err(error) => {
            eprintln!("{}", server.log());
            panic!("the benchmark failed: {error}");
        }
    }
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A `Log` that drops lines: the bench measures the service, not a
/// terminal. The line is still formatted by the flow.
struct Discard;

impl Log for Discard {
    fn log(&self, _flow: &str, _level: &str, _message: &str) {}
}

/// Serves `dir`'s store on a loopback port until stdin closes; prints
/// `listening ADDRESS` once ready. The exit code of the process.
fn server(dir: &Path) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOWC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("no runtime: {error}");
            return 2;
        }
    };
    runtime.block_on(async {
        let mut compiler = Compiler::new();
        compiler.add_source("bench.flow", FLOWS);
        compiler.add_config("flow.toml", CONFIG);
        let program = match compiler.check().into_result() {
            Ok(program) => program,
            Err(error) => {
                eprintln!("{error}");
                return 2;
            }
        };
        let store = match SqliteStore::open(dir.join("flows.db")) {
            Ok(store) => store,
            Err(error) => {
                eprintln!("no store: {error}");
                return 2;
            }
        };
        let recorder = Recorder::new();
        let metrics = Arc::new(Metrics::default());
        let engine = Engine::builder()
            .store(store)
            .clock(SystemClock)
            .whatsapp(recorder.whatsapp())
            .notify(recorder.notify())
            .log(Discard)
            .observer(metrics.clone())
            .build();
        if let Err(error) = engine.load(program.clone()) {
            eprintln!("{error}");
            return 2;
        }
        let options = ServeOptions::new(Secret::new(APP_SECRET), Secret::new("verify"));
        let service = Service::new(engine, program, metrics, options);
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("cannot listen: {error}");
                return 2;
            }
        };
        match listener.local_addr() {
            Ok(address) => println!("listening {address}"),
            Err(error) => {
                eprintln!("no address: {error}");
                return 2;
            }
        }
        // The parent closes stdin to stop the server.
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut sink);
            })
            .await;
        };
        match flowc::serve::serve(service, listener, stdin_closed).await {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("serve failed: {error}");
                1
            }
        }
    })
}

/// The server process, seen from the client.
struct Server {
    child: Child,
    address: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let log = dir.join("server.log");
        let stderr = std::fs::File::create(&log).expect("a log file");
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .env(SERVER_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let Some(address) = line.trim().strip_prefix("listening ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Server {
            address: address.to_string(),
            child,
            log,
        }
    }

    /// `VmRSS` and `VmHWM` of the server, from /proc (Linux only).
    fn memory(&self) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map_or("?".to_string(), |v| v.trim().to_string())
        };
        format!(
            "{} resident now, {} at the peak",
            field("VmRSS:"),
            field("VmHWM:")
        )
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Closes stdin and waits for a graceful stop, killing after a bound.
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// One complete HTTP request: the payload of message `n` of `run`, signed.
fn request(run: &str, n: usize) -> Vec<u8> {
    let customer = format!("49151{:08}", n % CUSTOMERS);
    let body = format!(
        concat!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":"#,
            r#"{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"4930901820","phone_number_id":"{pni}"}},"#,
            r#""contacts":[{{"profile":{{"name":"Customer {n}"}},"wa_id":"{customer}"}}],"#,
            r#""messages":[{{"from":"{customer}","id":"wamid.{run}.{n}","timestamp":"1764000000","type":"text","text":{{"body":"Hello, this is message {n}"}}}}]}}}}]}}]}}"#
        ),
        pni = PHONE_NUMBER_ID,
        customer = customer,
        run = run,
        n = n
    );
    let signature = signature_header(APP_SECRET.as_bytes(), body.as_bytes());
    let mut request = format!(
        "POST /webhook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nx-hub-signature-256: {signature}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// The requests of one pass: `n` messages, every [`DUPLICATE_EVERY`]th a
/// repeat of an earlier one. Returns them and the number of unique events.
fn requests(run: &str, n: usize) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::with_capacity(n);
    let mut unique: usize = 0;
    for i in 0..n {
        if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 {
            out.push(request(run, unique.saturating_sub(7)));
        } else {
            out.push(request(run, unique));
            unique += 1;
        }
    }
    (out, unique)
}

/// A keep-alive HTTP/1.1 connection that sends one request at a time.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(address: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(1024),
        })
    }

    /// Sends `request`; the response's status and body.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<(u16, String)> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let mut chunk = [0u8; 4096];
        let header_end = loop {
            if let Some(i) = find(&self.buffer, b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("the server closed the connection"));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buffer[..header_end]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while self.buffer.len() < header_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("the server closed the connection"));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&self.buffer[header_end..header_end + length]);
        Ok((status, body.to_string()))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Posts every request over `connections` connections; the latency of each.
async fn load(
    address: &str,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
) -> Result<Vec<Duration>, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (address, requests, next) = (address.to_string(), requests.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&address)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(i) else {
                    return Ok::<_, String>(latencies);
                };
                let start = Instant::now();
                let (status, body) = connection
                    .send(request)
                    .await
                    .map_err(|e| format!("request {i}: {e}"))?;
                latencies.push(start.elapsed());
                if status != 200 {
                    return Err(format!("request {i} was answered {status}: {body}"));
                }
            }
        }));
    }
    let mut all = Vec::with_capacity(requests.len());
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(all)
}

/// `GET /metrics`: the value of every sample line, by name and labels.
async fn metrics(address: &str) -> Result<Vec<(String, f64)>, String> {
    let mut connection = Connection::open(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (status, body) = connection
        .send(b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .map_err(|e| format!("metrics: {e}"))?;
    if status != 200 {
        return Err(format!("/metrics answered {status}"));
    }
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect())
}

fn metric(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0.0, |(_, v)| *v)
}

struct Report {
    requests: usize,
    unique: usize,
    elapsed: Duration,
    drained: Duration,
    latencies: Vec<Duration>,
    accepted: f64,
    duplicates: f64,
    runs: f64,
}

impl Report {
    fn print(&self, connections: usize, memory: &str) {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let pct = |p: f64| {
            sorted
                .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        println!();
        println!("| | |");
        println!("|---|---|");
        println!(
            "| requests (every {DUPLICATE_EVERY}th a redelivery) | {} ({} unique events) |",
            self.requests, self.unique
        );
        println!("| concurrent connections | {connections} |");
        println!(
            "| accepted and durable in the inbox | **{:.0} events/s** ({:.2} s) |",
            self.requests as f64 / self.elapsed.as_secs_f64(),
            self.elapsed.as_secs_f64()
        );
        println!(
            "| processed (runs finished, inbox empty) | {:.0} events/s ({:.2} s from the first request) |",
            self.unique as f64 / self.drained.as_secs_f64(),
            self.drained.as_secs_f64()
        );
        println!(
            "| latency p50 / p99 / max | {:.2} ms / {:.2} ms / {:.2} ms |",
            pct(0.50),
            pct(0.99),
            sorted.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
        );
        println!("| server memory | {memory} |");
        println!(
            "| server counters (whole process) | {} accepted, {} duplicates, {} runs finished |",
            self.accepted, self.duplicates, self.runs
        );
    }
}

async fn run(
    address: &str,
    warmup: usize,
    events: usize,
    connections: usize,
) -> Result<Report, String> {
    if warmup > 0 {
        let (requests, _) = requests("warmup", warmup);
        load(address, Arc::new(requests), connections).await?;
        wait_until_drained(address, Duration::from_secs(120)).await?;
    }
    let (requests, unique) = requests("bench", events);
    let requests = Arc::new(requests);
    let start = Instant::now();
    let latencies = load(address, requests.clone(), connections).await?;
    let elapsed = start.elapsed();
    wait_until_drained(address, Duration::from_secs(600)).await?;
    let drained = start.elapsed();
    let samples = metrics(address).await?;
    let accepted = metric(
        &samples,
        "flowc_events_total{source=\"webhook\",result=\"accepted\"}",
    );
    let duplicates = metric(
        &samples,
        "flowc_events_total{source=\"webhook\",result=\"duplicate\"}",
    );
    let runs = metric(&samples, "flowc_runs_finished_total{outcome=\"completed\"}");
    let warmup_unique = warmup - warmup / DUPLICATE_EVERY;
    if accepted as usize != unique + warmup_unique {
        return Err(format!(
            "the server accepted {accepted} events, expected {}",
            unique + warmup_unique
        ));
    }
    Ok(Report {
        requests: requests.len(),
        unique,
        elapsed,
        drained,
        latencies,
        accepted,
        duplicates,
        runs,
    })
}

/// Polls `/metrics` until no event is pending.
async fn wait_until_drained(address: &str, bound: Duration) -> Result<(), String> {
    let deadline = Instant::now() + bound;
    loop {
        let samples = metrics(address).await?;
        if metric(&samples, "flowc_pending_events") == 0.0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the inbox did not drain in time".into());
        }
        // A scrape is cheap (one COUNT for the gauge), but poll rarely all
        // the same, so the bench measures the server, not its own polling.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
