//! A throwaway PostgreSQL server for the tests and benchmarks that need
//! one: started once per test binary on a free loopback port, with its data
//! directory in a temporary folder, and a fresh database for every test.
//!
//! With `FLOWC_PG_URL` set (say `postgres://postgres@127.0.0.1:5432/postgres`)
//! the tests use that server instead and create their databases on it. With
//! neither the server programs (`initdb`, `postgres`; Debian's `postgresql`
//! package) nor `FLOWC_PG_URL`, the tests fail and say so, unless
//! `FLOWC_PG_TESTS=skip` asks to skip them.
//!
//! The server is started through a small shell that waits on its standard
//! input: when the test process exits, for whatever reason, the pipe closes,
//! the shell stops the server and removes its data directory. No server is
//! left behind by a failed or killed test run.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running server: its admin URL (database `postgres`).
pub struct Cluster {
    /// `postgres://USER@127.0.0.1:PORT`, without a database.
    pub base: String,
    /// Keeps the shell's stdin open while the test process lives.
    _guard: Mutex<Option<Child>>,
    /// The server's folder (its log is `server.log`).
    dir: PathBuf,
    /// How many times the server was started.
    starts: AtomicUsize,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// Whether PostgreSQL tests are asked to be skipped (`FLOWC_PG_TESTS=skip`).
pub fn skipped() -> bool {
    std::env::var("FLOWC_PG_TESTS").is_ok_and(|v| v == "skip")
}

/// The shared server, started on first use.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(|| start(None)) {
        Ok(cluster) => cluster,
        Err(reason) => fail(reason),
    }
}

/// A server of its own, for a test that stops and restarts it.
pub fn private_cluster() -> Cluster {
    if std::env::var("FLOWC_PG_URL").is_ok() {
        panic!("this test stops its server: unset FLOWC_PG_URL so it can start one");
    }
    start(None).unwrap_or_else(|reason| fail(&reason))
}

/// A server of its own that offers TLS with this certificate chain and
/// key (PEM), for the tests of encrypted connections.
pub fn private_tls_cluster(certificate_pem: &str, key_pem: &str) -> Cluster {
    if std::env::var("FLOWC_PG_URL").is_ok() {
        panic!("this test configures its server: unset FLOWC_PG_URL so it can start one");
    }
    start(Some((certificate_pem, key_pem))).unwrap_or_else(|reason| fail(&reason))
}

fn fail(reason: &str) -> ! {
    panic!(
        "PostgreSQL tests need a server: {reason}\n\
             Install PostgreSQL's server (Debian: apt-get install postgresql), set \
             FLOWC_PG_URL to a server the tests may create databases on, or set \
             FLOWC_PG_TESTS=skip to skip these tests."
    )
}

/// A new, empty database on the shared server, and its URL.
pub async fn fresh_database() -> String {
    database_on(cluster()).await
}

/// A new, empty database on `cluster`, and its URL.
pub async fn database_on(cluster: &Cluster) -> String {
    let name = format!(
        "flowc_test_{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("{}/postgres", cluster.base);
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server at {admin}: {e}"));
    let task = tokio::spawn(connection);
    // One statement each: several in one string would be one transaction,
    // which CREATE DATABASE refuses.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.batch_execute(&statement).await.unwrap_or_else(|e| {
            let reason = e
                .as_db_error()
                .map_or(e.to_string(), |db| db.message().to_string());
            panic!("cannot create test database {name}: {reason}")
        });
    }
    drop(client);
    let _ = task.await;
    format!("{}/{name}", cluster.base)
}

/// Starts a server; with `tls`, one that offers TLS with that certificate
/// and key.
fn start(tls: Option<(&str, &str)>) -> Result<Cluster, String> {
    if let Ok(url) = std::env::var("FLOWC_PG_URL") {
        // The URL's database part is replaced by each test's own.
        let base = match url.rfind('/') {
            Some(i) if i > "postgres://".len() => url[..i].to_string(),
            _ => url,
        };
        return Ok(Cluster {
            base,
            _guard: Mutex::new(None),
            dir: PathBuf::new(),
            starts: AtomicUsize::new(1),
        });
    }
    let bin = server_bin_dir().ok_or("initdb and postgres are not installed")?;
    let dir = tempfile::Builder::new()
        .prefix("flowc-pg-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary folder: {e}"))?
        // The shell removes it when the server stops.
        .keep();
    let as_root = is_root();
    if as_root {
        // initdb refuses to run as root: the server runs as `postgres`.
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("cannot hand the data folder to user postgres".into());
        }
    }
    let data = dir.join("data");
    let initdb = run_as(
        as_root,
        &bin.join("initdb"),
        &[
            "-D",
            path_str(&data)?,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
    )
    .output()
    .map_err(|e| format!("initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    let mut ssl = String::new();
    if let Some((certificate, key)) = tls {
        for (file, pem) in [("server.crt", certificate), ("server.key", key)] {
            let path = data.join(file);
            std::fs::write(&path, pem).map_err(|e| format!("{file}: {e}"))?;
            // The server refuses a key others can read.
            let owner = if as_root { "postgres:postgres" } else { "" };
            let mut commands = vec![vec!["chmod", "600"]];
            if !owner.is_empty() {
                commands.push(vec!["chown", owner]);
            }
            for command in commands {
                let status = Command::new(command[0])
                    .args(&command[1..])
                    .arg(&path)
                    .status()
                    .map_err(|e| format!("{}: {e}", command[0]))?;
                if !status.success() {
                    return Err(format!("{} {file} failed", command[0]));
                }
            }
        }
        ssl = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".to_string();
    }
    let port = free_port()?;
    // `stop` and `start` lines stop and start the server; end of input
    // (the test process is gone) stops it for good and removes its data.
    let script = format!(
        "up() {{ '{postgres}' -D '{data}' -p {port} -c listen_addresses=127.0.0.1 \
         -c unix_socket_directories='{dir}' -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB {ssl} \
         >>'{dir}/server.log' 2>&1 & pid=$!; }}; up; \
         while read cmd; do case $cmd in stop) kill -INT $pid; wait $pid;; start) up;; esac; done; \
         kill -INT $pid; wait $pid; rm -rf '{dir}'",
        postgres = path_str(&bin.join("postgres"))?,
        data = path_str(&data)?,
        dir = path_str(&dir)?,
    );
    let mut shell = run_as(as_root, Path::new("sh"), &["-c", &script]);
    let child = shell
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let base = format!("postgres://postgres@127.0.0.1:{port}");
    wait_until_ready(&dir, 1)?;
    Ok(Cluster {
        base,
        _guard: Mutex::new(Some(child)),
        dir,
        starts: AtomicUsize::new(1),
    })
}

impl Cluster {
    /// Stops the server (a fast shutdown: sessions are cut) and waits until
    /// its port refuses connections. Only for a server this harness started.
    pub fn stop(&self) {
        self.command("stop");
        let port = self.port();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "the server did not stop in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the stopped server again on the same port and data.
    pub fn restart(&self) {
        self.command("start");
        let port = self.port();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server did not start again in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.base))
    }

    fn command(&self, line: &str) {
        let mut guard = self._guard.lock().unwrap_or_else(|p| p.into_inner());
        let child = guard
            .as_mut()
            .unwrap_or_else(|| panic!("only a server this harness started can be stopped"));
        let stdin = child.stdin.as_mut().expect("the shell's stdin is piped");
        writeln!(stdin, "{line}").expect("the server's shell is running");
        stdin.flush().expect("the server's shell is running");
    }
}

/// Waits until the server has said, for the `starts`-th time, that it is
/// ready: it listens before it takes sessions ("the database system is
/// starting up"), so an open port is not enough.
fn wait_until_ready(dir: &Path, starts: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        if log.matches("ready to accept connections").count() >= starts {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the server did not start in 30 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_as(as_root: bool, program: &Path, args: &[&str]) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// The folder with `initdb` and `postgres`: on PATH, or Debian's
/// `/usr/lib/postgresql/VERSION/bin` (the newest).
fn server_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
