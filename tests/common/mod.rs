//! The service on a loopback port, for the tests that talk to it over HTTP
//! with signed webhooks: one harness for `serve`, `serve_examples` and
//! `conversations`.

// Each test file uses the parts it needs.
#![allow(dead_code)]

pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use flowc::check::Program;
use flowc::providers::recording::Recorder;
use flowc::providers::{Secret, Store};
use flowc::runtime::{Engine, EngineBuilder, EngineLimits, Limits};
use flowc::serve::webhook::signature_header;
use flowc::serve::{Metrics, ServeOptions, Service};

/// `flowc` as a child process in `dir` that talks to loopback only: the
/// environment's proxies are removed (the tests' fake Cloud API listens on
/// 127.0.0.1), colours are off and stdin is closed.
pub fn flowc_process(dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flowc"));
    command
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(std::process::Stdio::null());
    for proxy in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        command.env_remove(proxy);
    }
    command
}

/// The app secret the test service verifies signatures with.
pub const SECRET: &str = "app-secret";

/// A running service; stops when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// What the flows sent, logged and asked.
    pub recorder: Recorder,
    /// The engine behind the service.
    pub engine: Engine,
    /// The service's store.
    pub store: Arc<dyn Store>,
    /// A client for requests.
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts `program` behind the service on a free loopback port, over
/// `store` (kept in `dir`), with the recording fakes for WhatsApp and logs,
/// a 10 ms pair-rate pacing (several answers to one customer in a test) and
/// a 50 ms poll. `configure` adds to the engine, `options` to the service.
pub async fn start(
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    program: Program,
    configure: impl FnOnce(EngineBuilder, &Recorder) -> EngineBuilder,
    options: impl FnOnce(&mut ServeOptions),
) -> Server {
    let recorder = Recorder::new();
    let metrics = Arc::new(Metrics::default());
    let builder = Engine::builder()
        .whatsapp(recorder.whatsapp())
        .log(recorder.log())
        .shared_store(store.clone())
        .observer(metrics.clone())
        .limits(EngineLimits {
            pacing: Limits {
                recipient_interval: chrono::Duration::milliseconds(10),
                ..Limits::default()
            },
            ..EngineLimits::default()
        });
    let engine = configure(builder, &recorder).build();
    engine.load(program.clone()).expect("load");
    let mut service_options = ServeOptions::new(Secret::new(SECRET), Secret::new("verify-me"));
    service_options.poll_interval = Duration::from_millis(50);
    options(&mut service_options);
    let service = Service::new(engine.clone(), program, metrics, service_options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(flowc::serve::serve(service, listener, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        recorder,
        engine,
        store,
        client: reqwest::Client::new(),
        _dir: dir,
        stop: Some(stop),
    }
}

impl Server {
    /// Posts `body` to `/webhook`, signed with `secret`.
    pub async fn post_webhook(
        &self,
        body: &serde_json::Value,
        secret: &str,
    ) -> reqwest::StatusCode {
        let bytes = serde_json::to_vec(body).expect("json");
        self.client
            .post(format!("{}/webhook", self.base))
            .header(
                "x-hub-signature-256",
                signature_header(secret.as_bytes(), &bytes),
            )
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .expect("request")
            .status()
    }

    /// Waits until `done` holds, for at most ten seconds; panics with what
    /// the flows did so far.
    pub async fn eventually(&self, what: &str, done: impl Fn(&Server) -> bool) {
        for _ in 0..200 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}; so far:\n{}",
            self.recorder.transcript()
        );
    }
}
