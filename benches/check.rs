//! How fast `flowc check` is, in figures: `cargo bench --bench check`.
//!
//! 1. Throughput: parse and check generated projects of about 10k and 100k
//!    lines (the example flows copied under distinct names), in lines/s and
//!    MB/s, through the library and through the `flowc` binary.
//! 2. Adversarial inputs of at most 1 KB each (nesting right at the limit,
//!    long strings, hundreds of errors, token soup, unterminated strings...):
//!    median and worst time over many repetitions. The goal: a 1 KB input
//!    never takes more than a few milliseconds.
//! 3. Rendering: human (miette) and JSON output for files with many
//!    diagnostics, at growing sizes.
//!
//! Timings use `std::time::Instant`; each figure is a full
//! `Compiler::new()` + `add_source` + `add_config` + `check()`, the work
//! `flowc check` does per run, unless the row says otherwise.
//!
//! Run without `--bench` (as `cargo test --all-targets` does), it only makes
//! one quick pass over everything as a smoke test.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flowc::check::{Checked, Compiler};
use flowc::diag::render::{self, JsonDiagnostic, Style};
use flowc::source::FileId;
use flowc::syntax;

const CONFIG: &str = include_str!("../examples/flow.toml");

const EXAMPLES: &[(&str, &str)] = &[
    (
        "appointment_reminder",
        include_str!("../examples/appointment_reminder.flow"),
    ),
    (
        "call_follow_up",
        include_str!("../examples/call_follow_up.flow"),
    ),
    (
        "lead_qualification",
        include_str!("../examples/lead_qualification.flow"),
    ),
    ("message_log", include_str!("../examples/message_log.flow")),
    (
        "welcome_new_conversation",
        include_str!("../examples/welcome_new_conversation.flow"),
    ),
];

/// Full measurements, or one quick pass.
#[derive(Clone, Copy)]
struct Mode {
    full: bool,
}

impl Mode {
    fn reps(self, full: usize) -> usize {
        if self.full {
            full
        } else {
            1
        }
    }
}

fn main() {
    let mode = Mode {
        full: std::env::args().any(|a| a == "--bench"),
    };
    if !mode.full {
        println!("quick pass (run `cargo bench --bench check` for figures)");
    }
    println!(
        "flowc check benchmark: {} build, {} CPUs available",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // `FLOWC_BENCH_ONLY=throughput` (or `baseline`, `adversarial`,
    // `rendering`) runs one section, e.g. under a profiler.
    let only = std::env::var("FLOWC_BENCH_ONLY").ok();
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);
    if run("baseline") {
        baseline(mode);
    }
    if run("throughput") {
        throughput(mode);
    }
    if run("adversarial") {
        adversarial(mode);
    }
    if run("rendering") {
        rendering(mode);
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Checks `files` with the examples' configuration, as `flowc check` does.
fn check(files: &[(String, String)]) -> Checked {
    let mut compiler = Compiler::new();
    for (name, text) in files {
        compiler.add_source(name.as_str(), text.as_str());
    }
    compiler.add_config("flow.toml", CONFIG);
    compiler.check()
}

fn check_one(text: &str) -> Checked {
    let mut compiler = Compiler::new();
    compiler.add_source("input.flow", text);
    compiler.add_config("flow.toml", CONFIG);
    compiler.check()
}

/// Runs `f` `reps` times; the sorted durations.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

/// The CPU time this thread has used, from /proc (Linux; `None`
/// elsewhere). On a machine shared with other work, wall-clock time counts
/// the time other processes hold the core; CPU time does not, so it is the
/// fairer measure of the work one core does. The kernel updates it at
/// scheduler ticks (a few ms), so it only serves for runs of hundreds of
/// milliseconds, as the throughput rows are.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Like [`time`], and the mean CPU time of one run.
fn time_cpu<T>(reps: usize, f: impl FnMut() -> T) -> (Vec<Duration>, Option<Duration>) {
    let before = thread_cpu();
    let times = time(reps, f);
    let cpu = match (before, thread_cpu()) {
        (Some(a), Some(b)) => Some((b - a) / reps.max(1) as u32),
        _ => None,
    };
    (times, cpu)
}

fn median(times: &[Duration]) -> Duration {
    times[times.len() / 2]
}

fn worst(times: &[Duration]) -> Duration {
    *times.last().unwrap()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn lines(text: &str) -> usize {
    text.lines().count()
}

// ---------------------------------------------------------------------------
// 0. The fixed cost of a check
// ---------------------------------------------------------------------------

fn baseline(mode: Mode) {
    println!("\n## Fixed cost per check\n");
    // Must be the first check of the process: the first phone number
    // checked (flow.toml's sender numbers count) loads the phonenumber
    // crate's metadata, compiling its regexes once per process.
    let cold = Instant::now();
    black_box(check(&[]));
    println!(
        "first check in the process (cold, loads phone number metadata):          {:.0} µs",
        micros(cold.elapsed())
    );
    let std_lines: usize = flowc::check::STD_DECLARATIONS
        .iter()
        .map(|(_, t)| lines(t))
        .sum();
    let new = time(mode.reps(300), Compiler::new);
    let empty = time(mode.reps(300), || check(&[]));
    println!(
        "Compiler::new() (parses {} standard declaration files, {std_lines} lines): median {:.0} µs",
        flowc::check::STD_DECLARATIONS.len(),
        micros(median(&new))
    );
    println!(
        "Compiler::new() + flow.toml + check() of no flows:                        median {:.0} µs",
        micros(median(&empty))
    );
}

// ---------------------------------------------------------------------------
// 1. Throughput on generated projects
// ---------------------------------------------------------------------------

/// A project of about `target_lines` lines: the declarations of the
/// appointment example in one file, then copies of the example flows under
/// distinct names, one file per flow.
fn project(target_lines: usize) -> Vec<(String, String)> {
    let (_, reminder) = EXAMPLES[0];
    let split = reminder
        .find("flow appointment_reminder")
        .expect("the example declares its trigger first");
    let mut files = vec![(
        "declarations.flow".to_string(),
        reminder[..split].to_string(),
    )];
    let mut flows: Vec<(&str, &str)> = EXAMPLES.to_vec();
    flows[0].1 = &reminder[split..];
    let mut total = lines(&files[0].1);
    let mut copy = 0;
    while total < target_lines {
        for (name, text) in &flows {
            let renamed = text.replacen(
                &format!("flow {name}\n"),
                &format!("flow {name}_{copy}\n"),
                1,
            );
            total += lines(&renamed);
            files.push((format!("{name}_{copy}.flow"), renamed));
        }
        copy += 1;
    }
    files
}

fn throughput(mode: Mode) {
    println!("\n## Throughput on generated projects\n");
    println!("Wall-clock columns use the median run; the CPU columns divide by the mean");
    println!("CPU time of the measuring thread (one core), which other work on the");
    println!("machine does not inflate.\n");
    println!("| project | files | lines | MB | stage | median | best | lines/s | MB/s | CPU ms | lines per CPU-s | MB per CPU-s |");
    println!("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: &[(usize, usize)] = if mode.full {
        &[(10_000, 15), (100_000, 5)]
    } else {
        &[(2_000, 1)]
    };
    for &(target, reps) in sizes {
        let files = project(target);
        let total_lines: usize = files.iter().map(|(_, t)| lines(t)).sum();
        let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
        let mb = bytes as f64 / 1e6;
        let checked = check(&files);
        assert!(
            checked.diagnostics.is_empty(),
            "the generated project must be clean:\n{}",
            checked.render_plain()
        );
        let row = |stage: &str, times: &[Duration], cpu: Option<Duration>| {
            let m = median(times).as_secs_f64();
            let cpu_columns = match cpu {
                Some(cpu) => {
                    let c = cpu.as_secs_f64();
                    format!(
                        "{:.1} | {:.0} | {:.1}",
                        c * 1e3,
                        total_lines as f64 / c,
                        mb / c
                    )
                }
                None => "- | - | -".to_string(),
            };
            println!(
                "| ~{}k lines | {} | {total_lines} | {mb:.2} | {stage} | {:.1} ms | {:.1} ms | {:.0} | {:.1} | {cpu_columns} |",
                target / 1000,
                files.len(),
                m * 1e3,
                millis(times[0]),
                total_lines as f64 / m,
                mb / m
            );
        };
        let (parse, parse_cpu) = time_cpu(reps, || {
            for (i, (_, text)) in files.iter().enumerate() {
                black_box(syntax::parse(FileId(i as u32), text));
            }
        });
        row("parse only", &parse, parse_cpu);
        let (full, full_cpu) = time_cpu(reps, || check(&files));
        row("parse + check", &full, full_cpu);
        // A child process: its CPU time is not this thread's.
        if let Some(cli) = cli_time(&files, reps.min(5)) {
            row("`flowc check` process", &cli, None);
        }
    }
}

/// The `flowc` binary on the project written to a temporary folder.
fn cli_time(files: &[(String, String)], reps: usize) -> Option<Vec<Duration>> {
    let dir = tempfile::TempDir::new().ok()?;
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).ok()?;
    }
    std::fs::write(dir.path().join("flow.toml"), CONFIG).ok()?;
    let run = |path: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .args(["check", "--format", "json"])
            .arg(path)
            .output()
            .expect("flowc runs");
        assert!(output.status.success(), "{output:?}");
    };
    Some(time(reps, || run(dir.path())))
}

// ---------------------------------------------------------------------------
// 2. Adversarial inputs of at most 1 KB
// ---------------------------------------------------------------------------

const LIMIT: usize = 1024;
const NEST: usize = syntax::nesting::MAX_NESTING;

fn in_handler(body: &str) -> String {
    format!("flow x\non call.ended as call {{\n{body}\n}}\n")
}

fn in_message_handler(body: &str) -> String {
    format!("flow x\non whatsapp.message_received as msg {{\n{body}\n}}\n")
}

/// As many copies of `unit` as fit in `LIMIT` bytes around `wrap`.
fn fill(unit: &str, wrap: impl Fn(&str) -> String) -> String {
    let overhead = wrap("").len();
    let n = (LIMIT - overhead) / unit.len();
    wrap(&unit.repeat(n))
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn token_soup(seed: u64) -> String {
    const TOKENS: &[&str] = &[
        "flow",
        "on",
        "as",
        "let",
        "if",
        "else",
        "branch",
        "delay",
        "until",
        "retry",
        "times",
        "every",
        "backoff",
        "catch",
        "stop",
        "fail",
        "true",
        "none",
        "and",
        "or",
        "not",
        "contains",
        "matches",
        "call",
        "msg",
        "x",
        "call.ended",
        "whatsapp.send_text",
        "log",
        "\"text\"",
        "\"{x}\"",
        "\"{",
        "\"",
        "10m",
        "1h30m",
        "42",
        "3.5",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        ":",
        "=>",
        "->",
        "|",
        ".",
        "?",
        "@",
        "??",
        "=",
        "+",
        "-",
        "*",
        "/",
        "==",
        "<=",
        "\n",
        "#c\n",
        "/a+/",
    ];
    let mut rng = Rng(seed);
    let mut text = String::new();
    loop {
        let token = rng.pick(TOKENS);
        if text.len() + token.len() + 1 > LIMIT {
            break;
        }
        text.push_str(token);
        text.push(' ');
    }
    text
}

fn mixed_nesting(depth: usize) -> String {
    let opens = ["(", "[", "{a: "];
    let closes = [")", "]", "}"];
    let mut open = String::new();
    let mut close = String::new();
    for i in 0..depth {
        open.push_str(opens[i % 3]);
        close.insert_str(0, closes[i % 3]);
    }
    format!("{open}1{close}")
}

/// The text without its comment lines.
fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The adversarial corpus: name, input.
fn corpus() -> Vec<(&'static str, String)> {
    let mut inputs: Vec<(&'static str, String)> = vec![
        ("empty", String::new()),
        ("an example flow without comments", without_comments(EXAMPLES[4].1)),
        // Nesting right at the limit, and one past it. The handler's own
        // brace counts as one level.
        (
            "parentheses at the limit",
            in_handler(&format!(
                "let v = {}1{}",
                "(".repeat(NEST - 1),
                ")".repeat(NEST - 1)
            )),
        ),
        (
            "parentheses one past the limit",
            in_handler(&format!("let v = {}1{}", "(".repeat(NEST), ")".repeat(NEST))),
        ),
        (
            "mixed ( [ { at the limit",
            in_handler(&format!("let v = {}", mixed_nesting(NEST - 1))),
        ),
        (
            "nested calls at the limit",
            in_handler(&format!(
                "let v = {}1{}",
                "format(".repeat(NEST - 1),
                ")".repeat(NEST - 1)
            )),
        ),
        (
            "nested interpolations at the limit",
            in_handler(&format!(
                "log({}x{})",
                "\"{".repeat(NEST - 2),
                "}\"".repeat(NEST - 2)
            )),
        ),
        (
            "nested if blocks at the limit",
            in_handler(&format!(
                "{}stop{}",
                "if true { ".repeat(NEST - 1),
                " }".repeat(NEST - 1)
            )),
        ),
        (
            "nested list types at the limit",
            format!(
                "type T {{ a: {}String{} }}\n",
                "[".repeat(NEST - 1),
                "]".repeat(NEST - 1)
            ),
        ),
        // Strings.
        ("long string", fill("a", |s| in_handler(&format!("log(\"{s}\")")))),
        (
            "string full of {",
            fill("{", |s| in_handler(&format!("log(\"{s}\")"))),
        ),
        (
            "string full of \\{",
            fill("\\{", |s| in_handler(&format!("log(\"{s}\")"))),
        ),
        (
            "string of interpolations",
            fill("{call.outcome}", |s| in_handler(&format!("log(\"{s}\")"))),
        ),
        (
            "string of unicode escapes",
            fill("\\u{1F600}", |s| in_handler(&format!("log(\"{s}\")"))),
        ),
        (
            "unterminated string",
            fill("text {call.outcome} ", |s| {
                in_handler(&format!("log(\"{s}"))
            }),
        ),
        ("unterminated comment", fill("#", |s| format!("flow x {s}"))),
        ("string quotes only", fill("\"", |s| s.to_string())),
        // Many errors.
        (
            "bad phone literals",
            fill("p(\"0\")", |s| {
                format!("action p(to: Phone)\nflow x\non call.ended as c {{\n{s}\n}}\n")
            }),
        ),
        (
            "unknown variables in one string",
            fill("{a}", |s| in_handler(&format!("log(\"{s}\")"))),
        ),
        ("syntax errors, one per item", fill("flow 1\n", |s| s.to_string())),
        (
            "syntax errors in statements",
            fill("let = \n", in_handler),
        ),
        (
            "flows without trigger",
            {
                let mut s = String::new();
                let mut i = 0;
                while s.len() + 12 < LIMIT {
                    s.push_str(&format!("flow f{i}\n"));
                    i += 1;
                }
                s
            },
        ),
        ("duplicate flows", fill("flow a\n", |s| s.to_string())),
        (
            "unknown templates",
            fill(
                "whatsapp.send_template(sender: \"berlin-office\", template: \"nope\", to: call.customer_phone)\n",
                in_handler,
            ),
        ),
        (
            "unreachable arms",
            fill("\"a\" => stop\n", |s| {
                in_handler(&format!("branch call.outcome {{\n{s}}}"))
            }),
        ),
        (
            "shadowed catches",
            fill(" catch e { stop }", |s| {
                in_handler(&format!("notify(\"team\", \"a\"){s}"))
            }),
        ),
        // Long chains.
        (
            "operator chain at the limit",
            in_handler(&format!("let v = {}", vec!["1"; 257].join("+"))),
        ),
        (
            "operator chain over the limit",
            fill("1+", |s| in_handler(&format!("let v = {s}1"))),
        ),
        ("not chain", fill("not ", |s| in_handler(&format!("let v = {s}true")))),
        ("minus chain", fill("-", |s| in_handler(&format!("let v = {s}1")))),
        ("field chain", fill(".y", |s| in_handler(&format!("let v = call{s}")))),
        (
            "else-if chain",
            fill(" else if true { stop }", |s| {
                in_handler(&format!("if true {{ stop }}{s}"))
            }),
        ),
        // Tiny items.
        (
            "many tiny flows",
            {
                let mut s = String::new();
                let mut i = 0;
                loop {
                    let flow = format!("flow f{i}\non call.ended as c {{ stop }}\n");
                    if s.len() + flow.len() > LIMIT {
                        break s;
                    }
                    s.push_str(&flow);
                    i += 1;
                }
            },
        ),
        (
            "many error declarations",
            {
                let mut s = String::new();
                let mut i = 0;
                loop {
                    let item = format!("## doc\nerror E{i}\n");
                    if s.len() + item.len() > LIMIT {
                        break s;
                    }
                    s.push_str(&item);
                    i += 1;
                }
            },
        ),
        // Values the domain rules look at closely.
        (
            "long phone number",
            fill("9", |s| {
                in_handler(&format!(
                    "whatsapp.send_template(sender: \"berlin-office\", template: \"missed_you\", to: \"+{s}\")"
                ))
            }),
        ),
        (
            "long misspelt template",
            fill("missed_yo", |s| {
                in_handler(&format!(
                    "whatsapp.send_template(sender: \"berlin-office\", template: \"{s}\", to: call.customer_phone)"
                ))
            }),
        ),
        (
            "long misspelt time zone",
            fill("Europe/Berln", |s| {
                in_handler(&format!("let v = format(now(), \"%Y\", tz: \"{s}\")"))
            }),
        ),
        (
            "long misspelt variable",
            fill("custmer", |s| in_handler(&format!("log(\"{{{s}}}\")"))),
        ),
        (
            "long date format",
            fill("%Y-%m-%d %H:%M ", |s| {
                in_handler(&format!("let v = format(now(), \"{s}\")"))
            }),
        ),
        (
            "regex (\\w{100}){100}",
            in_message_handler(
                "branch msg.text {\n    matches /(\\w{100}){100}/ => stop\n    _ => stop\n}",
            ),
        ),
        (
            "regex \\p{L}{1000}{100}",
            in_message_handler(
                "branch msg.text {\n    matches /\\p{L}{1000}{100}/ => stop\n    _ => stop\n}",
            ),
        ),
        (
            "many regex arms",
            fill("matches /(a|b)*c[^x]{2,9}/ => stop\n", |s| {
                in_message_handler(&format!("branch msg.text {{\n{s}_ => stop\n}}"))
            }),
        ),
        ("closing brackets", fill(")]}", |s| s.to_string())),
        ("opening braces", fill("{", |s| s.to_string())),
        ("NUL and BOM", fill("\u{0}\u{FEFF}", |s| s.to_string())),
    ];
    for seed in 1..=3u64 {
        let name: &'static str = Box::leak(format!("token soup #{seed}").into_boxed_str());
        inputs.push((name, token_soup(seed)));
    }
    for seed in 1..=2u64 {
        let name: &'static str =
            Box::leak(format!("token soup in a handler #{seed}").into_boxed_str());
        let soup = token_soup(seed * 7919);
        let wrapped = in_handler(&soup[..soup.len() - in_handler("").len()]);
        inputs.push((name, wrapped));
    }
    for (name, text) in &inputs {
        assert!(text.len() <= LIMIT, "{name} is {} bytes", text.len());
    }
    inputs
}

fn adversarial(mode: Mode) {
    let reps = mode.reps(200);
    println!("\n## Adversarial inputs of at most {LIMIT} bytes ({reps} runs each)\n");
    println!("Each run: Compiler::new() + add_source + add_config + check(). `render` is");
    println!("rendering all diagnostics as `flowc check` does on a pipe (miette, plain).\n");
    println!("| input | bytes | diagnostics | first code | median µs | worst µs | render µs |");
    println!("|---|---:|---:|---|---:|---:|---:|");
    let mut slowest = ("", Duration::ZERO);
    for (name, text) in corpus() {
        let checked = check_one(&text);
        let count = checked.diagnostics.len();
        let first = checked
            .diagnostics
            .iter()
            .next()
            .map_or("-", |d| d.code.as_str());
        let times = time(reps, || check_one(&text));
        let render = time(reps.min(50), || checked.render_plain());
        println!(
            "| {name} | {} | {count} | {first} | {:.0} | {:.0} | {:.0} |",
            text.len(),
            micros(median(&times)),
            micros(worst(&times)),
            micros(median(&render)),
        );
        if median(&times) > slowest.1 {
            slowest = (name, median(&times));
        }
    }
    println!(
        "\nSlowest median: {} ({:.2} ms).",
        slowest.0,
        millis(slowest.1)
    );
}

// ---------------------------------------------------------------------------
// 3. Rendering many diagnostics
// ---------------------------------------------------------------------------

/// One handler of `n` lines, every tenth a bad phone number.
fn file_with_errors(n: usize) -> String {
    let mut text = String::from("flow big\non call.ended as call {\n");
    for i in 0..n {
        if i % 10 == 0 {
            text.push_str(&format!(
                "    whatsapp.send_template(sender: \"berlin-office\", template: \"missed_you\", to: \"0151/{i}\")\n"
            ));
        } else {
            text.push_str(&format!("    log(\"line {i} {{call.outcome}}\")\n"));
        }
    }
    text.push_str("}\n");
    text
}

fn rendering(mode: Mode) {
    println!("\n## Rendering many diagnostics (one file, a bad phone number every 10th line)\n");
    println!(
        "| lines | KB | diagnostics | check ms | JSON ms | human ms | human µs per diagnostic |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: &[usize] = if mode.full {
        &[2_500, 5_000, 10_000, 20_000]
    } else {
        &[500]
    };
    for &n in sizes {
        let text = file_with_errors(n);
        let reps = mode.reps(3);
        let check_times = time(reps, || check_one(&text));
        let checked = check_one(&text);
        let json = time(reps, || {
            let mut out = Vec::new();
            for d in &checked.diagnostics {
                serde_json::to_writer(&mut out, &JsonDiagnostic::new(d, &checked.sources)).unwrap();
                out.push(b'\n');
            }
            out
        });
        let human = time(reps, || {
            checked
                .diagnostics
                .iter()
                .map(|d| render::human(d, &checked.sources, Style::Plain, 100))
                .collect::<String>()
        });
        let count = checked.diagnostics.len();
        println!(
            "| {} | {:.0} | {count} | {:.1} | {:.1} | {:.1} | {:.0} |",
            lines(&text),
            text.len() as f64 / 1e3,
            millis(median(&check_times)),
            millis(median(&json)),
            millis(median(&human)),
            micros(median(&human)) / count.max(1) as f64
        );
    }
}
