//! How fast the engine runs flows, in figures: `cargo bench --bench engine`.
//!
//! 1. Flow execution: a small flow (a template chosen by whether the text
//!    contains "price", four variables filled, one send) dispatched many
//!    times on one core (tokio `current_thread`), against a zero-latency
//!    WhatsApp fake and the memory store; the same logic in rhai, Lua 5.4
//!    (mlua) and native Rust on the same events, with their sends compared.
//! 2. Added latency per action: flows of 1, 10 and 50 actions, time per
//!    dispatch divided by the number of actions, p50 and p99.
//! 3. Suspended runs: a million runs waiting in a `delay`; memory per run
//!    (counting allocator and VmRSS), serialized bytes per run, and the rate
//!    at which they resume from the memory store and from SQLite.
//! 4. Pacing: 100,000 sends pending at once through the engine's rate limiter
//!    on virtual time; timer lateness and the limits checked on the recorded
//!    send times.
//!
//! Run without `--bench` (as `cargo test --all-targets` does), it only makes
//! one quick pass over everything as a smoke test.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicIsize, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use flowc::check::{Compiler, Program};
use flowc::providers::recording::Recorder;
use flowc::providers::sqlite::SqliteStore;
use flowc::providers::{
    Clock, Log, MemoryStore, Notify, SenderRef, SenderStatus, SentMessage, Store, TemplateMessage,
    TemplateParameters, TextMessage, VirtualClock, WhatsApp,
};
use flowc::runtime::{ActionError, Engine, EngineLimits, Event, Limits, RunStatus};

// ---------------------------------------------------------------------------
// Counting allocator: live heap bytes, for memory per suspended run.
// ---------------------------------------------------------------------------

/// mimalloc (the allocator of the `flowc` binary, and here of every
/// implementation measured), counting the bytes currently allocated.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Off while throughput is timed: two atomic additions per allocation are
/// measurable there, and would weigh most on the implementation that
/// allocates most. Live bytes are only ever compared within one counted
/// stretch.
static COUNTING: AtomicBool = AtomicBool::new(true);

fn count(bytes: isize, allocations: u64) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(allocations, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize), 0);
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize, 1);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// Runs `timed` with the allocation counting off.
fn uncounted<T>(timed: impl FnOnce() -> T) -> T {
    COUNTING.store(false, Ordering::Relaxed);
    let result = timed();
    COUNTING.store(true, Ordering::Relaxed);
    result
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Resident memory of this process in bytes, from /proc/self/status.
fn vm_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// ---------------------------------------------------------------------------
// Mode and helpers
// ---------------------------------------------------------------------------

/// Full measurements, or one quick pass.
#[derive(Clone, Copy)]
struct Mode {
    full: bool,
}

impl Mode {
    fn n(self, full: usize, quick: usize) -> usize {
        if self.full {
            full
        } else {
            quick
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current_thread runtime")
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused current_thread runtime")
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .expect("a valid start instant")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Limits that never make a send wait: the reservation still runs, the
/// pacing section measures the waiting.
fn no_wait_limits() -> EngineLimits {
    EngineLimits {
        pacing: Limits {
            sender_per_second: 1e12,
            recipient_interval: chrono::Duration::zero(),
        },
        ..EngineLimits::default()
    }
}

const CONFIG: &str = r#"
[senders.berlin-office]
phone_number_id = "106540352242922"
phone = "+4930901820"

[senders.munich-office]
phone_number_id = "107655463353033"
phone = "+4989215400"

[templates.price_info]
language = "en"
category = "utility"
body = "Hi {{1}}, thanks for asking about prices ({{2}}). Conversation {{3}}, message {{4}}."

[templates.general_info]
language = "en"
category = "utility"
body = "Hi {{1}}, thanks for your message ({{2}}). Conversation {{3}}, message {{4}}."
"#;

fn compile(source: &str) -> Program {
    let mut compiler = Compiler::new();
    compiler.add_source("bench.flow", source);
    compiler.add_config("flow.toml", CONFIG);
    match compiler.check().into_result() {
        Ok(program) => program,
        Err(error) => panic!("the bench flow does not check: {error:?}"),
    }
}

// ---------------------------------------------------------------------------
// Zero-latency providers
// ---------------------------------------------------------------------------

/// A clock that stands still unless moved; waits end at once and move it to
/// their deadline (virtual time without a timer wheel).
#[derive(Clone)]
struct ManualClock {
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    fn new(at: DateTime<Utc>) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicI64::new(
                at.timestamp_nanos_opt().expect("start within range"),
            )),
        }
    }

    fn set(&self, at: DateTime<Utc>) {
        self.nanos.store(
            at.timestamp_nanos_opt().expect("time within range"),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        if let Some(deadline) = deadline.timestamp_nanos_opt() {
            self.nanos.fetch_max(deadline, Ordering::SeqCst);
        }
        Box::pin(std::future::ready(()))
    }
}

/// One send as every implementation reports it: template, recipient,
/// variables.
type SendRecord = (String, String, Vec<String>);

/// Sends per template and an order-sensitive digest of all sends.
#[derive(Debug, Default, Clone, PartialEq)]
struct Tally {
    per_template: BTreeMap<String, u64>,
    digest: u64,
}

impl Tally {
    fn add(&mut self, template: &str, to: &str, variables: &[String]) {
        *self.per_template.entry(template.to_string()).or_default() += 1;
        // FNV-1a over the send, chained: equal digests mean equal sends in
        // the same order.
        let mut hash = self.digest ^ 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                hash ^= u64::from(*b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            hash ^= 0xff;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        };
        feed(template.as_bytes());
        feed(to.as_bytes());
        for v in variables {
            feed(v.as_bytes());
        }
        self.digest = hash;
    }
}

/// A WhatsApp that answers at once and tallies what it was asked to send.
#[derive(Clone, Default)]
struct FastWhatsApp {
    tally: Arc<Mutex<Tally>>,
    count: Arc<AtomicU64>,
}

#[async_trait]
impl WhatsApp for FastWhatsApp {
    async fn send_template(&self, message: &TemplateMessage) -> Result<SentMessage, ActionError> {
        let variables: &[String] = match &message.parameters {
            TemplateParameters::Positional(values) => values,
            TemplateParameters::Named(_) => &[],
        };
        self.tally
            .lock()
            .expect("tally lock")
            .add(&message.template, &message.to, variables);
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        Ok(SentMessage {
            message_id: format!("wamid.{n}"),
        })
    }
    async fn send_text(&self, _message: &TextMessage) -> Result<SentMessage, ActionError> {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        Ok(SentMessage {
            message_id: format!("wamid.{n}"),
        })
    }
    async fn sender_status(&self, _sender: &SenderRef) -> Result<SenderStatus, ActionError> {
        Ok(SenderStatus::online())
    }
}

/// Notifications and log lines that go nowhere.
#[derive(Clone, Copy, Default)]
struct Quiet;

#[async_trait]
impl Notify for Quiet {
    async fn notify(&self, _channel: &str, _message: &str) -> Result<(), ActionError> {
        Ok(())
    }
}

impl Log for Quiet {
    fn log(&self, _flow: &str, _level: &str, _message: &str) {}
}

fn fast_engine(
    program: Program,
    whatsapp: FastWhatsApp,
    clock: ManualClock,
    store: Arc<dyn Store>,
) -> Engine {
    let engine = Engine::builder()
        .whatsapp(whatsapp)
        .notify(Quiet)
        .log(Quiet)
        .clock(clock)
        .shared_store(store)
        .limits(no_wait_limits())
        .build();
    engine.load(program).expect("the program loads");
    engine
}

// ---------------------------------------------------------------------------
// 1. Flow execution against peers
// ---------------------------------------------------------------------------

const PRICE_FLOW: &str = r#"
flow price_reply

on whatsapp.message_received as msg {
    if msg.text contains "price" {
        whatsapp.send_template(sender: msg.sender_id, template: "price_info", to: msg.phone,
            variables: [msg.name ?? "there", msg.text, msg.conversation_id, msg.message_id])
    } else {
        whatsapp.send_template(sender: msg.sender_id, template: "general_info", to: msg.phone,
            variables: [msg.name ?? "there", msg.text, msg.conversation_id, msg.message_id])
    }
}
"#;

const PRICE_RHAI: &str = r#"
fn on_message(phone, text, name, conversation, message) {
    let who = if name == () { "there" } else { name };
    if text.contains("price") {
        send("price_info", phone, [who, text, conversation, message]);
    } else {
        send("general_info", phone, [who, text, conversation, message]);
    }
}
"#;

const PRICE_LUA: &str = r#"
function on_message(phone, text, name, conversation, message)
    local who = name or "there"
    if string.find(text, "price", 1, true) then
        send("price_info", phone, {who, text, conversation, message})
    else
        send("general_info", phone, {who, text, conversation, message})
    end
end
"#;

/// The input events: alternately with and without "price".
struct Inputs {
    phones: Vec<String>,
    texts: [&'static str; 2],
    names: [Option<&'static str>; 3],
}

impl Inputs {
    fn new() -> Self {
        Inputs {
            phones: (0..1000)
                .map(|i| format!("+49151{:08}", 10_000_000 + i))
                .collect(),
            texts: [
                "Hello, what is the price of a 10 kWp system?",
                "Hello, can someone call me back tomorrow?",
            ],
            names: [Some("Anna Schmidt"), None, Some("Jonas Becker")],
        }
    }

    /// Event `i`: phone, text, name, conversation id, message id.
    fn fields(&self, i: usize) -> (&str, &str, Option<&str>, String, String) {
        (
            &self.phones[i % self.phones.len()],
            self.texts[i % 2],
            self.names[i % 3],
            format!("conv-{}", i % 1000),
            format!("wamid.in.{i}"),
        )
    }

    fn event(&self, i: usize) -> Event {
        let (phone, text, name, conversation, message) = self.fields(i);
        Event::new(
            "whatsapp.message_received",
            serde_json::json!({
                "phone": phone,
                "text": text,
                "sender_id": "berlin-office",
                "timestamp": "2026-12-01T09:00:00+01:00",
                "conversation_id": conversation,
                "message_id": message,
                "name": name,
            }),
        )
    }
}

struct PeerResult {
    name: &'static str,
    seconds: f64,
    tally: Tally,
    /// Heap allocations per run, where counted.
    allocations_per_run: Option<f64>,
}

fn flowc_run(inputs: &Inputs, n: usize) -> PeerResult {
    let whatsapp = FastWhatsApp::default();
    let engine = fast_engine(
        compile(PRICE_FLOW),
        whatsapp.clone(),
        ManualClock::new(start()),
        Arc::new(MemoryStore::new()),
    );
    let rt = runtime();
    let seconds = uncounted(|| {
        rt.block_on(async {
            let began = Instant::now();
            for i in 0..n {
                let event = inputs.event(i);
                let reports = engine.dispatch(event).await.expect("dispatch");
                debug_assert!(matches!(reports[0].status, RunStatus::Finished(_)));
                black_box(reports);
            }
            began.elapsed().as_secs_f64()
        })
    });
    let tally = whatsapp.tally.lock().expect("tally").clone();
    // Heap allocations made by the dispatches themselves, not by building
    // the events, counted in a shorter pass of the same events after the
    // timed one.
    let counted = (n / 10).max(1);
    let dispatch_allocations = rt.block_on(async {
        let mut allocations = 0;
        for i in 0..counted {
            let event = inputs.event(i);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let reports = engine.dispatch(event).await.expect("dispatch");
            black_box(reports);
            allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
        }
        allocations
    });
    PeerResult {
        name: "flowc engine",
        seconds,
        tally,
        allocations_per_run: Some(dispatch_allocations as f64 / counted as f64),
    }
}

fn rhai_run(inputs: &Inputs, n: usize) -> PeerResult {
    let sends: Arc<Mutex<Vec<SendRecord>>> = Arc::new(Mutex::new(Vec::new()));
    let mut engine = rhai::Engine::new();
    let sink = sends.clone();
    engine.register_fn(
        "send",
        move |template: &str, to: &str, variables: rhai::Array| {
            let variables = variables.into_iter().map(|v| v.to_string()).collect();
            sink.lock().expect("sends lock").push((
                template.to_string(),
                to.to_string(),
                variables,
            ));
        },
    );
    let ast = engine
        .compile(PRICE_RHAI)
        .expect("the rhai script compiles");
    let mut scope = rhai::Scope::new();
    let began = Instant::now();
    for i in 0..n {
        let (phone, text, name, conversation, message) = inputs.fields(i);
        let name: rhai::Dynamic = match name {
            Some(name) => name.into(),
            None => rhai::Dynamic::UNIT,
        };
        engine
            .call_fn::<()>(
                &mut scope,
                &ast,
                "on_message",
                (
                    phone.to_string(),
                    text.to_string(),
                    name,
                    conversation,
                    message,
                ),
            )
            .expect("the rhai call");
    }
    let seconds = began.elapsed().as_secs_f64();
    let tally = tally_of(&sends);
    PeerResult {
        name: "rhai (precompiled AST)",
        seconds,
        tally,
        allocations_per_run: None,
    }
}

/// The sends a peer recorded, counted as the engine's are.
fn tally_of(sends: &Mutex<Vec<SendRecord>>) -> Tally {
    let mut tally = Tally::default();
    for (template, to, variables) in sends.lock().expect("sends").iter() {
        tally.add(template, to, variables);
    }
    tally
}

fn lua_run(inputs: &Inputs, n: usize) -> PeerResult {
    let sends: Arc<Mutex<Vec<SendRecord>>> = Arc::new(Mutex::new(Vec::new()));
    let lua = mlua::Lua::new();
    let sink = sends.clone();
    let send = lua
        .create_function(
            move |_, (template, to, variables): (String, String, Vec<String>)| {
                sink.lock()
                    .expect("sends lock")
                    .push((template, to, variables));
                Ok(())
            },
        )
        .expect("the send function");
    lua.globals().set("send", send).expect("set send");
    lua.load(PRICE_LUA).exec().expect("the lua script loads");
    let on_message: mlua::Function = lua.globals().get("on_message").expect("on_message");
    let began = Instant::now();
    for i in 0..n {
        let (phone, text, name, conversation, message) = inputs.fields(i);
        on_message
            .call::<()>((phone, text, name, conversation, message))
            .expect("the lua call");
    }
    let seconds = began.elapsed().as_secs_f64();
    let tally = tally_of(&sends);
    PeerResult {
        name: "Lua 5.4 (mlua)",
        seconds,
        tally,
        allocations_per_run: None,
    }
}

fn native_run(inputs: &Inputs, n: usize) -> PeerResult {
    let mut sends: Vec<SendRecord> = Vec::new();
    let began = Instant::now();
    for i in 0..n {
        let (phone, text, name, conversation, message) = inputs.fields(i);
        let who = name.unwrap_or("there").to_string();
        let template = if text.contains("price") {
            "price_info"
        } else {
            "general_info"
        };
        sends.push((
            template.to_string(),
            phone.to_string(),
            vec![who, text.to_string(), conversation, message],
        ));
    }
    let seconds = began.elapsed().as_secs_f64();
    black_box(&sends);
    let mut tally = Tally::default();
    for (template, to, variables) in &sends {
        tally.add(template, to, variables);
    }
    PeerResult {
        name: "native Rust",
        seconds,
        tally,
        allocations_per_run: None,
    }
}

fn execution(mode: Mode) {
    // FLOWC_BENCH_DISPATCHES overrides the number of events.
    let n = std::env::var("FLOWC_BENCH_DISPATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| mode.n(200_000, 200));
    println!("\n## 1. Flow execution: {n} dispatches on one core\n");
    println!(
        "Flow: `if msg.text contains \"price\"` choose a template, fill four variables, send. \
         Events alternate with and without \"price\"; every third has no name (`?? \"there\"`)."
    );
    let inputs = Inputs::new();
    // Rounds taking turns: on a shared machine a neighbour only ever slows
    // a round down, so each implementation's fastest round is the closest
    // to its own cost; the slowest is shown beside it.
    let rounds = mode.n(3, 1);
    let mut slowest = [0.0f64; 4];
    let mut results: Vec<PeerResult> = Vec::new();
    for _ in 0..rounds {
        let round = [
            flowc_run(&inputs, n),
            uncounted(|| rhai_run(&inputs, n)),
            uncounted(|| lua_run(&inputs, n)),
            uncounted(|| native_run(&inputs, n)),
        ];
        for (i, r) in round.iter().enumerate() {
            slowest[i] = slowest[i].max(r.seconds);
        }
        if results.is_empty() {
            results.extend(round);
        } else {
            for (kept, new) in results.iter_mut().zip(round) {
                if new.seconds < kept.seconds {
                    *kept = new;
                }
            }
        }
    }
    let reference = results[3].tally.clone();
    println!();
    println!(
        "Fastest of {rounds} rounds taking turns; in parentheses the executions/s of the slowest."
    );
    println!();
    println!("| implementation | executions/s | µs per run | × native | sends per template | same sends |");
    println!("|---|---:|---:|---:|---|---|");
    for (r, slowest) in results.iter().zip(slowest) {
        let per_run_us = r.seconds * 1e6 / n as f64;
        let counts: Vec<String> = r
            .tally
            .per_template
            .iter()
            .map(|(t, c)| format!("{t}: {c}"))
            .collect();
        println!(
            "| {} | {:.0} ({:.0}) | {:.2} | {:.1} | {} | {} |",
            r.name,
            n as f64 / r.seconds,
            n as f64 / slowest,
            per_run_us,
            r.seconds / results[3].seconds,
            counts.join(", "),
            if r.tally == reference { "yes" } else { "NO" },
        );
    }
    for r in &results {
        assert_eq!(
            r.tally, reference,
            "{} made different sends than native Rust",
            r.name
        );
    }
    let flowc = &results[0];
    println!(
        "\nflowc vs rhai: {:.1}×, vs Lua: {:.1}× the time per run.",
        flowc.seconds / results[1].seconds,
        flowc.seconds / results[2].seconds
    );
    if let Some(allocations) = flowc.allocations_per_run {
        println!("flowc: {allocations:.1} heap allocations per dispatch (building the event not counted).");
    }
}

// ---------------------------------------------------------------------------
// 2. Added latency per action
// ---------------------------------------------------------------------------

fn actions_flow(actions: usize, kind: &str) -> String {
    let mut body = String::new();
    for i in 0..actions {
        match kind {
            "send" => body.push_str(&format!(
                "    whatsapp.send_template(sender: \"berlin-office\", template: \"price_info\", \
                 to: call.customer_phone, variables: [call.agent_name, call.outcome, call.call_id, \"{i}\"])\n"
            )),
            _ => body.push_str(&format!(
                "    notify(\"team\", \"call {{call.call_id}} ended: {{call.outcome}} ({i})\")\n"
            )),
        }
    }
    format!("flow actions\n\non call.ended as call {{\n{body}}}\n")
}

fn call_event(i: usize) -> Event {
    Event::new(
        "call.ended",
        serde_json::json!({
            "customer_phone": format!("+49151{:08}", 10_000_000 + i % 1000),
            "customer_name": "Anna Schmidt",
            "agent_name": "Jonas Becker",
            "outcome": "appointment_booked",
            "appointment_date": "12.03.2026 10:30",
            "location": "Berlin Mitte showroom",
            "ended_at": "2026-12-01T10:00:00+01:00",
            "call_id": format!("call_{i:08}"),
        }),
    )
}

/// Times each action from the engine's `Action` event to its `ActionDone`:
/// the action alone, without the dispatch around it.
#[derive(Clone, Default)]
struct ActionTimer {
    started: Arc<Mutex<Option<Instant>>>,
    micros: Arc<Mutex<Vec<f64>>>,
}

impl flowc::runtime::Observer for ActionTimer {
    fn event(&self, event: &flowc::runtime::RunEvent<'_>) {
        match event {
            flowc::runtime::RunEvent::Action { .. } => {
                *self.started.lock().expect("timer lock") = Some(Instant::now());
            }
            flowc::runtime::RunEvent::ActionDone { .. } => {
                if let Some(began) = self.started.lock().expect("timer lock").take() {
                    self.micros
                        .lock()
                        .expect("timer lock")
                        .push(began.elapsed().as_secs_f64() * 1e6);
                }
            }
            _ => {}
        }
    }
}

/// The load average, to show how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

fn latency(mode: Mode) {
    let dispatches = mode.n(20_000, 20);
    println!("\n## 2. Added latency per action\n");
    println!(
        "Each dispatch is timed alone (`Instant` around `engine.dispatch(event).await`) and \
         divided by the number of actions in the flow; {dispatches} dispatches per row, after \
         {} warm-up dispatches. `send` is `whatsapp.send_template` to the zero-latency fake \
         (exactly-once claim, pacing reservation, send log, all in the memory store); \
         `notify` goes to a provider that returns at once.\n",
        dispatches / 10
    );
    println!(
        "The last two columns time each action alone, from the engine's `Action` to its \
         `ActionDone` observer event (argument evaluation excluded): a dispatch of 50 sends \
         lasts about 0.2 ms and is often preempted on a busy machine (load average {}), \
         which the per-dispatch figures include.\n",
        load_average()
    );
    println!("| action | actions per flow | p50 µs per action | p99 µs per action | p50 µs per dispatch | p99 µs per dispatch | p50 µs, action alone | p99 µs, action alone |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for kind in ["send", "notify"] {
        for actions in [1usize, 10, 50] {
            let timer = ActionTimer::default();
            let engine = Engine::builder()
                .whatsapp(FastWhatsApp::default())
                .notify(Quiet)
                .log(Quiet)
                .clock(ManualClock::new(start()))
                .store(MemoryStore::new())
                .observer(timer.clone())
                .limits(no_wait_limits())
                .build();
            engine
                .load(compile(&actions_flow(actions, kind)))
                .expect("the program loads");
            let rt = runtime();
            let mut times: Vec<f64> = rt.block_on(async {
                for i in 0..dispatches / 10 {
                    engine.dispatch(call_event(i)).await.expect("warm-up");
                }
                timer.micros.lock().expect("timer lock").clear();
                let mut times = Vec::with_capacity(dispatches);
                for i in 0..dispatches {
                    let event = call_event(i);
                    let began = Instant::now();
                    let reports = engine.dispatch(event).await.expect("dispatch");
                    times.push(began.elapsed().as_secs_f64() * 1e6);
                    assert_eq!(
                        reports[0].status,
                        RunStatus::Finished(flowc::providers::RunOutcome::Completed)
                    );
                }
                times
            });
            times.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&times, 0.50), percentile(&times, 0.99));
            let mut alone = timer.micros.lock().expect("timer lock").clone();
            alone.sort_by(f64::total_cmp);
            println!(
                "| {kind} | {actions} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {:.2} |",
                p50 / actions as f64,
                p99 / actions as f64,
                p50,
                p99,
                percentile(&alone, 0.50),
                percentile(&alone, 0.99),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Suspended runs
// ---------------------------------------------------------------------------

const WAITING_FLOW: &str = r#"
flow follow_up

on call.ended as call {
    delay 3d
    whatsapp.send_template(sender: "berlin-office", template: "price_info",
        to: call.customer_phone, variables: [call.customer_name ?? "there", call.agent_name, call.outcome, call.call_id])
}
"#;

/// Dispatches `n` runs that wait three days; returns seconds taken.
async fn suspend_many(engine: &Engine, n: usize) -> f64 {
    let began = Instant::now();
    for i in 0..n {
        let reports = engine.dispatch(call_event(i)).await.expect("dispatch");
        debug_assert!(matches!(reports[0].status, RunStatus::Suspended(_)));
    }
    began.elapsed().as_secs_f64()
}

/// Resumes every due run; returns (runs resumed, seconds).
async fn resume_all(engine: &Engine) -> (usize, f64) {
    let began = Instant::now();
    let reports = engine.run_due().await.expect("run_due");
    (reports.len(), began.elapsed().as_secs_f64())
}

/// Serialized bytes of the suspended runs as the store keeps them: the
/// state, id, flow and wake-up time of each.
async fn stored_bytes(store: &dyn Store, clock: &ManualClock, sample: usize) -> (usize, f64) {
    // Claiming takes them out of the memory store: sample at most `sample`
    // and put them back.
    let due = store
        .claim_due_runs(clock.now() + chrono::Duration::days(30), sample)
        .await
        .expect("claim a sample");
    let mut total = 0usize;
    for run in &due {
        let state = match &run.state {
            serde_json::Value::String(text) => text.len(),
            other => serde_json::to_string(other).expect("json").len(),
        };
        total += state + run.id.len() + run.flow.len() + 8;
    }
    let count = due.len();
    for run in due {
        store.save_run(run).await.expect("put back");
    }
    (count, total as f64 / count.max(1) as f64)
}

fn suspended(mode: Mode) {
    // FLOWC_BENCH_RUNS overrides the number of runs in the memory store.
    let n = std::env::var("FLOWC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| mode.n(1_000_000, 1000));
    let n_sqlite = mode.n(100_000, 200);
    println!("\n## 3. Suspended runs\n");
    println!(
        "Flow: `delay 3d`, then one template send; the event is a `call.ended` with 8 fields. \
         Memory: live heap bytes (counting `#[global_allocator]`) and VmRSS before and after \
         suspending the runs in the memory store, divided by the number of runs; the engine and \
         store exist before the first measurement. Serialized: state + id + flow + 8 bytes \
         wake-up time, as the store keeps them (a sample of 1,000). Resume: `run_due()` three \
         days later, each run resumed, its send made (exactly-once claim, send log) and its \
         record written.\n"
    );
    println!("| store | runs | suspend runs/s | heap bytes per run | VmRSS bytes per run | serialized bytes per run | resume runs/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");

    // Memory store.
    {
        let clock = ManualClock::new(start());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let engine = fast_engine(
            compile(WAITING_FLOW),
            FastWhatsApp::default(),
            clock.clone(),
            store.clone(),
        );
        let rt = runtime();
        rt.block_on(async {
            // One run first, so lazily built state (phone metadata, maps)
            // is not counted per run.
            suspend_many(&engine, 1).await;
            let heap_before = live_bytes();
            let rss_before = vm_rss().unwrap_or(0);
            let seconds = suspend_many(&engine, n).await;
            let heap = (live_bytes() - heap_before) as f64 / n as f64;
            let rss = (vm_rss().unwrap_or(0) as f64 - rss_before as f64) / n as f64;
            assert_eq!(
                store.suspended_count().await.expect("count"),
                n + 1,
                "every run waits"
            );
            let (_, serialized) = stored_bytes(store.as_ref(), &clock, 1000).await;
            clock.set(start() + chrono::Duration::days(3) + chrono::Duration::seconds(1));
            let (resumed, resume_seconds) = resume_all(&engine).await;
            assert_eq!(resumed, n + 1);
            println!(
                "| memory | {n} | {:.0} | {heap:.0} | {rss:.0} | {serialized:.0} | {:.0} |",
                n as f64 / seconds,
                resumed as f64 / resume_seconds
            );
        });
    }

    // SQLite, a real file.
    {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("bench.sqlite");
        let clock = ManualClock::new(start());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open sqlite"));
        let engine = fast_engine(
            compile(WAITING_FLOW),
            FastWhatsApp::default(),
            clock.clone(),
            store.clone(),
        );
        let rt = runtime();
        rt.block_on(async {
            let seconds = suspend_many(&engine, n_sqlite).await;
            let (_, serialized) = stored_bytes(store.as_ref(), &clock, 1000).await;
            let file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
                + std::fs::metadata(path.with_extension("sqlite-wal"))
                    .map(|m| m.len())
                    .unwrap_or(0);
            clock.set(start() + chrono::Duration::days(3) + chrono::Duration::seconds(1));
            let (resumed, resume_seconds) = resume_all(&engine).await;
            assert_eq!(resumed, n_sqlite);
            println!(
                "| SQLite file (WAL, synchronous=NORMAL) | {n_sqlite} | {:.0} | - | - | {serialized:.0} (file + WAL {:.0} per run) | {:.0} |",
                n_sqlite as f64 / seconds,
                file as f64 / n_sqlite as f64,
                resumed as f64 / resume_seconds
            );
        });
    }
}

// ---------------------------------------------------------------------------
// 4. Pacing
// ---------------------------------------------------------------------------

/// A virtual clock that records how late each wait ends.
struct LatenessClock {
    inner: VirtualClock,
    lateness_ns: Mutex<Vec<i64>>,
}

impl Clock for LatenessClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.inner.sleep_until(deadline).await;
            let late = (self.inner.now() - deadline)
                .num_nanoseconds()
                .unwrap_or(i64::MAX);
            self.lateness_ns.lock().expect("lateness lock").push(late);
        })
    }
}

fn pacing(mode: Mode) {
    let sends = mode.n(100_000, 500);
    let senders = ["berlin-office", "munich-office"];
    let recipients = mode.n(20_000, 100);
    let limits = Limits::default();
    println!("\n## 4. Pacing: {sends} sends pending at once\n");
    println!(
        "{sends} runs started at the same virtual instant, each sending one template, from {} \
         senders to {recipients} recipients ({} sends each), on a paused tokio runtime with a \
         virtual clock: all reserve their slots, then wait. Limits: {} per second per sender, \
         {} s between sends to one recipient. Lateness: how long after its slot each wait \
         ended, in virtual time (tokio's timers have a resolution of 1 ms, so a slot at \
         12.5 ms ends at 13 ms). The limits are checked on the send times the recording \
         WhatsApp fake logged.\n",
        senders.len(),
        sends / recipients,
        limits.sender_per_second,
        limits.recipient_interval.num_seconds()
    );
    let source = r#"
flow paced
on call.ended as call {
    whatsapp.send_template(sender: call.agent_name, template: "price_info", to: call.customer_phone,
        variables: [call.agent_name, call.outcome, call.call_id, "x"])
}
"#;
    // The sender is chosen per event; the flow reads it from `agent_name`,
    // a String field, so the checker cannot verify it: both are configured.
    let source = source.replace(
        "sender: call.agent_name",
        "sender: call.location ?? \"berlin-office\"",
    );
    let rt = paused_runtime();
    rt.block_on(async {
        let clock = Arc::new(LatenessClock {
            inner: VirtualClock::starting_at(start()),
            lateness_ns: Mutex::new(Vec::new()),
        });
        let recorder = Recorder::with_clock(clock.clone());
        let engine = Engine::builder()
            .whatsapp(recorder.whatsapp())
            .notify(Quiet)
            .log(Quiet)
            .shared_clock(clock.clone())
            .store(MemoryStore::new())
            .limits(EngineLimits {
                pacing: limits,
                ..EngineLimits::default()
            })
            .build();
        engine.load(compile(&source)).expect("load");
        let began = Instant::now();
        let mut tasks = Vec::with_capacity(sends);
        for i in 0..sends {
            let engine = engine.clone();
            let event = Event::new(
                "call.ended",
                serde_json::json!({
                    // Each recipient's sends are started one after the
                    // other, so the recipient interval binds too.
                    "customer_phone": format!("+49151{:08}", 10_000_000 + i / (sends / recipients)),
                    "agent_name": "Jonas Becker",
                    "outcome": "no_answer",
                    "location": senders[i % senders.len()],
                    "ended_at": "2026-12-01T10:00:00+01:00",
                    "call_id": format!("call_{i:08}"),
                }),
            );
            tasks.push(tokio::spawn(async move { engine.dispatch(event).await }));
        }
        for task in tasks {
            task.await.expect("task").expect("dispatch");
        }
        let wall = began.elapsed().as_secs_f64();
        let virtual_seconds = (clock.now() - start()).num_milliseconds() as f64 / 1000.0;

        // The limits, from the recorded send times.
        let effects = recorder.effects();
        assert_eq!(effects.len(), sends, "every send was made");
        let mut per_sender: HashMap<String, Vec<i64>> = HashMap::new();
        let mut per_recipient: HashMap<String, Vec<i64>> = HashMap::new();
        for effect in &effects {
            if let flowc::providers::recording::EffectKind::Template(message) = &effect.kind {
                let at = effect.at.timestamp_nanos_opt().expect("time in range");
                per_sender
                    .entry(message.sender.name.clone())
                    .or_default()
                    .push(at);
                per_recipient.entry(message.to.clone()).or_default().push(at);
            }
        }
        let per_second = limits.sender_per_second as usize;
        let mut sender_violations = 0usize;
        let mut max_in_window = 0usize;
        for times in per_sender.values_mut() {
            times.sort_unstable();
            // Most sends in any window [t, t + 1 s): for each send as the
            // window's first, count the sends before t + 1 s.
            let mut end = 0;
            for start_index in 0..times.len() {
                while end < times.len() && times[end] < times[start_index] + 1_000_000_000 {
                    end += 1;
                }
                let count = end - start_index;
                max_in_window = max_in_window.max(count);
                if count > per_second {
                    sender_violations += 1;
                }
            }
        }
        let interval_ns = limits
            .recipient_interval
            .num_nanoseconds()
            .expect("interval in range");
        let mut recipient_violations = 0usize;
        let mut min_gap = i64::MAX;
        for times in per_recipient.values_mut() {
            times.sort_unstable();
            for pair in times.windows(2) {
                let gap = pair[1] - pair[0];
                min_gap = min_gap.min(gap);
                if gap < interval_ns {
                    recipient_violations += 1;
                }
            }
        }
        let mut lateness: Vec<f64> = clock
            .lateness_ns
            .lock()
            .expect("lateness")
            .iter()
            .map(|ns| *ns as f64 / 1e6)
            .collect();
        lateness.sort_by(f64::total_cmp);
        println!("| | |\n|---|---|");
        println!("| sends made | {} |", effects.len());
        let sender_bound = (sends as f64 / senders.len() as f64 - 1.0) / limits.sender_per_second;
        let recipient_bound = (sends as f64 / recipients as f64 - 1.0)
            * limits.recipient_interval.num_milliseconds() as f64
            / 1000.0;
        println!(
            "| virtual time to send all | {virtual_seconds:.1} s (lower bound from the limits {:.1} s) |",
            sender_bound.max(recipient_bound)
        );
        println!("| wall time | {wall:.2} s ({:.0} sends/s) |", sends as f64 / wall);
        println!(
            "| timer lateness p50 / p99 / max | {:.3} / {:.3} / {:.3} ms |",
            percentile(&lateness, 0.5),
            percentile(&lateness, 0.99),
            lateness.last().copied().unwrap_or(0.0)
        );
        println!("| most sends by one sender in any 1 s window | {max_in_window} (limit {per_second}) |");
        println!("| smallest gap between two sends to one recipient | {:.3} s (limit {} s) |",
            min_gap as f64 / 1e9, limits.recipient_interval.num_seconds());
        println!("| sender limit violations | {sender_violations} |");
        println!("| recipient limit violations | {recipient_violations} |");
        assert_eq!(sender_violations, 0, "a sender went over its limit");
        assert_eq!(recipient_violations, 0, "a recipient got two sends too close");
    });
}

fn main() {
    let mode = Mode {
        full: std::env::args().any(|a| a == "--bench"),
    };
    if !mode.full {
        println!("quick pass (run `cargo bench --bench engine` for figures)");
    }
    println!("load average at the start: {}", load_average());
    println!(
        "flowc engine benchmark: {} build, {} CPUs available, one core used (tokio current_thread), mimalloc for all",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if wanted("execution") {
        execution(mode);
    }
    if wanted("latency") {
        latency(mode);
    }
    if wanted("suspended") {
        suspended(mode);
    }
    if wanted("pacing") {
        pacing(mode);
    }
}
