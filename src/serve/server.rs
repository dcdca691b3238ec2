//! The HTTP service: Meta's webhook, the host's event endpoint, health and
//! metrics; and the workers behind them: one that starts the runs of
//! stored events, one that resumes runs when they fall due, and one that
//! drives running campaigns. A `phone_number_quality_update` webhook is
//! judged at once by the campaigns' quality guard (not kept in the inbox:
//! a pause that fails is answered 500 so Meta retries it).
//!
//! An event is answered 200 only once it is in the store's inbox, and it is
//! dispatched from there: a crash between the answer and the runs loses
//! nothing, and a second delivery of the same event is recognised by its id.
//!
//! The requests' events reach the inbox through one writer task (group
//! commit): it takes every event waiting, up to [`WRITER_BATCH`] requests'
//! worth, stores them with one [`Store::enqueue_events`] call (one
//! transaction in a durable store) and only then answers each request. A
//! request is still answered 200 only once its event is committed; if the
//! commit fails, every request of that batch gets the store error and none
//! of their events is kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::metrics::Metrics;
use super::webhook::{self, SenderDirectory};
use crate::check::Program;
use crate::providers::{InboxEvent, Secret, Store, StoreError};
use crate::runtime::{Engine, EngineError, Event, RunStatus};

/// How the service listens and whom it trusts.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The app secret that signs Meta's webhook payloads.
    pub app_secret: Secret,
    /// The token Meta's verification handshake must present.
    pub verify_token: Secret,
    /// The bearer token of the host's `/events` endpoint; without one the
    /// endpoint refuses everything.
    pub events_token: Option<Secret>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How often the workers look for work when nothing wakes them.
    pub poll_interval: Duration,
    /// How long the ids of handled events are kept to recognise
    /// redeliveries; older ones are pruned every hour
    /// ([`Store::prune_finished_events`]). `None` keeps them forever.
    pub keep_events: Option<chrono::Duration>,
}

impl ServeOptions {
    /// Options with the defaults: 1 MiB bodies, a one-second poll, event
    /// ids kept for 14 days.
    pub fn new(app_secret: Secret, verify_token: Secret) -> Self {
        ServeOptions {
            app_secret,
            verify_token,
            events_token: None,
            body_limit: 1 << 20,
            poll_interval: Duration::from_secs(1),
            keep_events: Some(chrono::Duration::days(14)),
        }
    }
}

/// The most inbox events taken (and marked done) at once.
const INBOX_BATCH: usize = 64;

/// The most requests whose events the writer commits together.
pub const WRITER_BATCH: usize = 512;
/// How many requests may wait for the writer before handlers wait to hand
/// theirs over (backpressure instead of unbounded memory).
const WRITER_QUEUE: usize = 4 * WRITER_BATCH;

/// What the writer answers a request: whether each of its events is new.
type WriterReply = Result<Vec<bool>, Arc<StoreError>>;

/// Work for the inbox writer.
enum WriterJob {
    /// One request's events, and where to answer once they are committed.
    Enqueue(Vec<InboxEvent>, oneshot::Sender<WriterReply>),
    /// Answered once everything sent before it has been committed (or has
    /// failed).
    Flush(oneshot::Sender<()>),
}

/// The running service's shared state.
pub struct Service {
    engine: Engine,
    program: Program,
    store: Arc<dyn Store>,
    senders: SenderDirectory,
    options: ServeOptions,
    metrics: Arc<Metrics>,
    inbox_ready: Notify,
    /// The group-commit writer, started on first use (on the runtime that
    /// serves the requests).
    writer: OnceLock<mpsc::Sender<WriterJob>>,
}

impl Service {
    /// A service over an engine that has `program` loaded, with the metrics
    /// the engine's observer feeds.
    pub fn new(
        engine: Engine,
        program: Program,
        metrics: Arc<Metrics>,
        options: ServeOptions,
    ) -> Arc<Service> {
        Arc::new(Service {
            store: engine.store().clone(),
            senders: SenderDirectory::from_config(program.config()),
            engine,
            program,
            options,
            metrics,
            inbox_ready: Notify::new(),
            writer: OnceLock::new(),
        })
    }

    fn writer(&self) -> &mpsc::Sender<WriterJob> {
        self.writer.get_or_init(|| {
            let (jobs, queue) = mpsc::channel(WRITER_QUEUE);
            tokio::spawn(inbox_writer(self.store.clone(), queue));
            jobs
        })
    }

    /// Stores `events` in the inbox through the writer; whether each is new.
    /// Returns once they are committed.
    async fn store_events(&self, events: Vec<InboxEvent>) -> WriterReply {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        match self.writer().send(WriterJob::Enqueue(events, reply)).await {
            Ok(()) => answer.await.unwrap_or_else(|_| {
                // The writer went away (its runtime stopped, or the store
                // panicked) with the batch in hand: whether it was committed
                // is unknown, so the sender must deliver it again.
                Err(Arc::new(StoreError::Backend(
                    "the inbox writer stopped before answering".into(),
                )))
            }),
            // No writer (its runtime is gone): store directly.
            Err(mpsc::error::SendError(job)) => match job {
                WriterJob::Enqueue(events, _) => {
                    self.store.enqueue_events(events).await.map_err(Arc::new)
                }
                WriterJob::Flush(_) => Ok(Vec::new()),
            },
        }
    }

    /// Waits until every event handed to the writer so far is committed
    /// (or has failed).
    pub async fn flush_writer(&self) {
        let Some(jobs) = self.writer.get() else {
            return;
        };
        let (done, flushed) = oneshot::channel();
        if jobs.send(WriterJob::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// Starts the runs of every event in the inbox, oldest first. An event
    /// that does not fit its trigger is logged and dropped; a store failure
    /// leaves the rest for the next round.
    ///
    /// An event leaves the inbox only after its runs are saved or recorded;
    /// the events of a batch leave it together, with one store call (one
    /// transaction in a durable store) instead of one per event. A crash
    /// before that call dispatches them again, and their runs, known by
    /// then, are not started twice.
    pub async fn process_inbox(&self) -> Result<usize, EngineError> {
        let mut done = 0;
        loop {
            let batch = self.store.pending_events(INBOX_BATCH).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            let mut started = Vec::with_capacity(batch.len());
            let mut failure = None;
            for item in &batch {
                match self.start(item).await {
                    Ok(()) => started.push(item.id.as_str()),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            // The events started before a failure are done all the same.
            self.store.finish_events(&started).await?;
            done += started.len();
            if let Some(error) = failure {
                return Err(error);
            }
        }
    }

    async fn start(&self, item: &InboxEvent) -> Result<(), EngineError> {
        // Read in place: the stored JSON is not copied to be read.
        let event = match Event::deserialize(&item.event) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(event = %item.id, %error, "stored event is unreadable; dropped");
                return Ok(());
            }
        };
        if event.trigger == webhook::MESSAGE_RECEIVED {
            // The first message of a customer with no open conversation also
            // starts `whatsapp.conversation_started`; decided before the
            // message itself renews the window.
            let phone = event
                .fields
                .get("phone")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let sender = event
                .fields
                .get("sender_id")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let last = self.store.last_inbound(phone, sender).await?;
            let open =
                last.is_some_and(|at| self.engine.clock().now() - at < chrono::Duration::hours(24));
            if !open {
                let mut started = webhook::conversation_started_from(&event);
                if let Some(phone) = self
                    .program
                    .config()
                    .senders
                    .get(sender)
                    .and_then(|s| s.phone.clone())
                {
                    started
                        .fields
                        .insert("sender_phone".into(), serde_json::Value::String(phone));
                }
                self.dispatch(&format!("{}:started", item.id), started)
                    .await?;
            }
        }
        self.dispatch(&item.id, event).await
    }

    async fn dispatch(&self, id: &str, event: Event) -> Result<(), EngineError> {
        match self.engine.dispatch_once(id, event).await {
            Ok(reports) => {
                tracing::info!(event = id, runs = reports.len(), "event dispatched");
                Ok(())
            }
            Err(EngineError::Event(error)) => {
                tracing::warn!(event = id, %error, "event does not fit its trigger; dropped");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Waits for events and starts their runs until `shutdown` turns true.
    pub async fn inbox_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.process_inbox().await {
                tracing::error!(%error, "starting runs failed; retrying");
            }
            tokio::select! {
                _ = self.inbox_ready.notified() => {}
                _ = tokio::time::sleep(self.options.poll_interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Resumes runs as they fall due until `shutdown` turns true. Runs that
    /// fell due while the service was down go on at once.
    pub async fn timer_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
                last_prune = Some(tokio::time::Instant::now());
                self.prune_events().await;
            }
            match self.engine.run_due_concurrently(RESUME_CONCURRENCY).await {
                Ok(reports) if !reports.is_empty() => {
                    for report in &reports {
                        if let RunStatus::NotResumed { reason, retry_at } = &report.status {
                            self.metrics.not_resumed();
                            tracing::error!(run = %report.id, flow = %report.flow, %retry_at, "run cannot go on: {reason}; kept for a deploy that can run it");
                        }
                    }
                    tracing::info!(resumed = reports.len(), "due runs resumed");
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "resuming due runs failed; retrying"),
            }
            let wait = match self.engine.next_due().await {
                Ok(Some(wake)) => (wake - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .min(self.options.poll_interval),
                _ => self.options.poll_interval,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// How many due runs the timer worker resumes at once: a run waiting for
/// its send slot holds up none of the others, and store round trips overlap.
const RESUME_CONCURRENCY: usize = 8;

/// How often the timer worker prunes old event ids.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

impl Service {
    /// Forgets handled events older than [`ServeOptions::keep_events`].
    async fn prune_events(&self) {
        let Some(keep) = self.options.keep_events else {
            return;
        };
        let before = self.engine.clock().now() - keep;
        match self.store.prune_finished_events(before).await {
            Ok(0) => {}
            Ok(pruned) => {
                self.metrics.pruned(pruned);
                tracing::info!(pruned, "forgot handled events older than {before}");
            }
            Err(error) => {
                tracing::warn!(%error, "pruning handled events failed; retrying in an hour")
            }
        }
    }

    /// Drives every running campaign of the store, each in a task of its
    /// own, until `shutdown` turns true: a campaign whose `flowc campaign
    /// start` was killed, or that a person resumed, goes on here. Looks for
    /// new ones every poll interval. Recipients are claimed under a lease,
    /// so another process driving the same campaign never starts the same
    /// one. On shutdown the drivers stop where they are; what they had
    /// claimed is taken again when its lease ends.
    pub async fn campaign_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut drivers = tokio::task::JoinSet::new();
        let driving = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        // A store that keeps no campaigns fails every look: said once.
        let mut failing = false;
        loop {
            match self.store.campaigns().await {
                Ok(campaigns) => {
                    failing = false;
                    for campaign in campaigns {
                        if campaign.state != crate::providers::CampaignState::Running {
                            continue;
                        }
                        let mut active = match driving.lock() {
                            Ok(guard) => guard,
                            Err(poisoned) => poisoned.into_inner(),
                        };
                        if !active.insert(campaign.id.clone()) {
                            continue;
                        }
                        drop(active);
                        let (engine, driving) = (self.engine.clone(), driving.clone());
                        drivers.spawn(async move {
                            match engine.run_campaign(&campaign.id).await {
                                Ok(outcome) => {
                                    tracing::info!(campaign = %campaign.id, ?outcome, "campaign driven")
                                }
                                Err(error) => {
                                    tracing::error!(campaign = %campaign.id, %error, "driving the campaign failed; retrying")
                                }
                            }
                            let mut active = match driving.lock() {
                                Ok(guard) => guard,
                                Err(poisoned) => poisoned.into_inner(),
                            };
                            active.remove(&campaign.id);
                        });
                    }
                }
                Err(error) if !failing => {
                    failing = true;
                    tracing::error!(%error, "reading campaigns failed; retrying");
                }
                Err(error) => tracing::debug!(%error, "reading campaigns failed again"),
            }
            // Finished drivers are reaped; running ones go on.
            while drivers.try_join_next().is_some() {}
            tokio::select! {
                _ = tokio::time::sleep(self.options.poll_interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// The routes: `GET/POST /webhook`, `POST /events`, `GET /healthz`,
/// `GET /metrics`.
pub fn router(service: Arc<Service>) -> Router {
    let limit = service.options.body_limit;
    Router::new()
        .route("/webhook", get(handshake).post(webhook_post))
        .route("/events", post(host_event))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(service)
}

/// Serves on `listener` until `shutdown` resolves; then stops taking
/// requests, lets the workers finish what they hold (runs persist their
/// state as they go) and returns.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let inbox = tokio::spawn(service.clone().inbox_worker(stopped.clone()));
    let timer = tokio::spawn(service.clone().timer_worker(stopped.clone()));
    let campaigns = tokio::spawn(service.clone().campaign_worker(stopped));
    let address: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?address, "flowc serve listening");
    let result = axum::serve(listener, router(service.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    // Every answered request's events are committed already; this also
    // commits those of requests whose client went away while they waited.
    let _ = tokio::time::timeout(Duration::from_secs(30), service.flush_writer()).await;
    let _ = stop.send(true);
    // A worker in the middle of a run finishes its step; give it a bound.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let _ = inbox.await;
        let _ = timer.await;
        let _ = campaigns.await;
    })
    .await;
    tracing::info!("flowc serve stopped");
    result
}

async fn handshake(
    State(service): State<Arc<Service>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match webhook::verify_handshake(&params, service.options.verify_token.expose()) {
        Ok(challenge) => (StatusCode::OK, challenge).into_response(),
        Err(error) => {
            tracing::warn!(%error, "webhook verification refused");
            (StatusCode::FORBIDDEN, "verification failed").into_response()
        }
    }
}

async fn webhook_post(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if let Err(error) = webhook::verify_signature(
        service.options.app_secret.expose().as_bytes(),
        &body,
        signature,
    ) {
        tracing::warn!(%error, "webhook with a bad signature refused");
        service.metrics.event("webhook", "rejected");
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let parsed = match webhook::parse_payload(&body, &service.senders) {
        Ok(parsed) => parsed,
        Err(error) => {
            // A payload for another product of the app is signed by Meta and
            // answered 200, or Meta would retry it for days.
            let status =
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            if status.is_success() {
                tracing::info!(%error, "webhook payload ignored");
                service.metrics.event("webhook", "ignored");
            } else {
                tracing::warn!(%error, "malformed webhook payload refused");
                service.metrics.event("webhook", "rejected");
            }
            return (status, error.to_string()).into_response();
        }
    };
    for warning in &parsed.warnings {
        // An event for a number flow.toml does not know is never handled
        // as another number's: it is dropped, and counted.
        if matches!(warning.reason, webhook::SkipReason::UnknownSender { .. }) {
            tracing::warn!(%warning, "webhook event for an unknown number dropped");
            service.metrics.dropped("unknown_sender");
        } else {
            tracing::info!(%warning, "part of a webhook payload skipped");
        }
    }
    for update in &parsed.quality_updates {
        // Not kept in the inbox: a pause that fails is answered 500, so
        // Meta retries it; a pause that holds is idempotent.
        match service.engine.on_quality_update(update).await {
            Ok(paused) if !paused.is_empty() => {
                tracing::warn!(?paused, number = %update.display_phone_number, "campaigns paused for quality");
                service.metrics.quality_paused(paused.len());
            }
            Ok(_) => {
                tracing::info!(number = %update.display_phone_number, event = update.event.as_str(), "quality update")
            }
            Err(error) => {
                tracing::error!(%error, "pausing campaigns for quality failed");
                return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
            }
        }
    }
    let mut events = Vec::with_capacity(parsed.events.len());
    for inbound in parsed.events {
        match inbox_event(inbound.id, &inbound.event) {
            Ok(event) => events.push(event),
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
    match enqueue(&service, events).await {
        Ok(new) => {
            for new in new {
                service
                    .metrics
                    .event("webhook", if new { "accepted" } else { "duplicate" });
            }
        }
        // Meta retries what is not answered 200: nothing is lost.
        Err(response) => return response,
    }
    service.inbox_ready.notify_one();
    (StatusCode::OK, "ok").into_response()
}

async fn host_event(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = match (&service.options.events_token, bearer(&headers)) {
        (Some(token), Some(given)) => constant_time_eq(token.expose().as_bytes(), given.as_bytes()),
        _ => false,
    };
    if !authorized {
        tracing::warn!("host event without a valid bearer token refused");
        service.metrics.event("host", "rejected");
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
    }
    let (id, event) = match webhook::parse_host_event(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            service.metrics.event("host", "rejected");
            return (StatusCode::BAD_REQUEST, error.to_string()).into_response();
        }
    };
    // Checked now, so the host learns at once which field is wrong.
    if let Err(error) = event.to_value(service.program.schemas()) {
        service.metrics.event("host", "rejected");
        return (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()).into_response();
    }
    let event = match inbox_event(id, &event) {
        Ok(event) => event,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    match enqueue(&service, vec![event]).await {
        Ok(new) => {
            let new = new.first().copied().unwrap_or(false);
            service
                .metrics
                .event("host", if new { "accepted" } else { "duplicate" });
            service.inbox_ready.notify_one();
            let status = if new {
                "accepted"
            } else {
                "duplicate: already received"
            };
            (StatusCode::ACCEPTED, status).into_response()
        }
        Err(response) => response,
    }
}

fn inbox_event(id: String, event: &Event) -> Result<InboxEvent, serde_json::Error> {
    let json = serde_json::to_value(event)?;
    Ok(InboxEvent {
        id,
        event: json,
        received_at: Utc::now(),
    })
}

/// Commits `events` to the inbox (through the writer); whether each is new.
async fn enqueue(service: &Service, events: Vec<InboxEvent>) -> Result<Vec<bool>, Response> {
    service.store_events(events).await.map_err(|error| {
        tracing::error!(%error, "could not store an event");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the event store is unavailable",
        )
            .into_response()
    })
}

/// The group-commit writer: takes every request waiting (up to
/// [`WRITER_BATCH`]), commits their events with one
/// [`Store::enqueue_events`] call and answers each request. Ends when the
/// service (every sender) is gone.
async fn inbox_writer(store: Arc<dyn Store>, mut queue: mpsc::Receiver<WriterJob>) {
    let mut jobs = Vec::with_capacity(WRITER_BATCH);
    while queue.recv_many(&mut jobs, WRITER_BATCH).await > 0 {
        let mut events = Vec::new();
        let mut waiting = Vec::with_capacity(jobs.len());
        let mut flushes = Vec::new();
        for job in jobs.drain(..) {
            match job {
                WriterJob::Enqueue(batch, reply) => {
                    waiting.push((batch.len(), reply));
                    events.extend(batch);
                }
                WriterJob::Flush(done) => flushes.push(done),
            }
        }
        if !events.is_empty() {
            let total = events.len();
            let result = match store.enqueue_events(events).await {
                Ok(new) if new.len() == total => Ok(new),
                Ok(new) => Err(StoreError::Backend(format!(
                    "the store answered for {} of {total} events",
                    new.len()
                ))),
                Err(error) => Err(error),
            };
            match result {
                Ok(new) => {
                    let mut new = new.into_iter();
                    for (n, reply) in waiting {
                        // A request whose client went away is not answered;
                        // its events are kept all the same.
                        let _ = reply.send(Ok(new.by_ref().take(n).collect()));
                    }
                }
                Err(error) => {
                    let error = Arc::new(error);
                    for (_, reply) in waiting {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

async fn health(State(service): State<Arc<Service>>) -> Response {
    match service.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {error}")).into_response(),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let pending = service.store.pending_count().await.unwrap_or(0);
    let suspended = service.store.suspended_count().await.unwrap_or(0);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        service.metrics.render(pending, suspended),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
