//! Keeps `docs/diagnostics.md` in step with the table of codes and the rule
//! files: the page is generated from `Code::ALL` and each rule's module doc
//! comment. Run with `FLOWC_BLESS=1` to rewrite it after changing a rule.

use std::path::Path;

use flowc::diag::{Code, Severity};

fn rule_doc(code: Code) -> Option<String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/check/rules")
        .join(format!("{}.rs", code.slug().replace('-', "_")));
    let text = std::fs::read_to_string(file).ok()?;
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.trim_start_matches("//!")
                .strip_prefix(' ')
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect();
    // The first paragraph repeats code and title; the rest is the explanation.
    let body: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.is_empty())
        .skip(1)
        .copied()
        .collect();
    Some(body.join("\n"))
}

fn generate() -> String {
    let mut out = String::from(
        "# Diagnostics\n\n\
         Every diagnostic `flowc check` reports has a stable code. Codes are grouped by phase: \
         `F0xxx` syntax, `F1xxx` names, `F2xxx` arguments and schemas, `F3xxx` literals and \
         WhatsApp's rules, `F4xxx` flow structure, `F5xxx` the project configuration. \
         A failing example of each, with its exact output, is in `tests/ui/`.\n\n\
         This page is generated from `src/diag/codes.rs` and `src/check/rules/` by \
         `FLOWC_BLESS=1 cargo test --test docs`.\n\n\
         | code | name | severity | catches |\n|---|---|---|---|\n",
    );
    for code in Code::ALL {
        let severity = match code.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "| [{0}](#{1}) | `{2}` | {severity} | {3} |\n",
            code.as_str(),
            code.as_str().to_lowercase(),
            code.slug(),
            code.summary()
        ));
    }
    for code in Code::ALL {
        out.push_str(&format!(
            "\n## {}\n\n`{}`: {}\n",
            code.as_str(),
            code.slug(),
            code.summary()
        ));
        if let Some(doc) = rule_doc(*code).filter(|d| !d.trim().is_empty()) {
            out.push('\n');
            out.push_str(doc.trim_end());
            out.push('\n');
        }
    }
    out
}

#[test]
fn diagnostics_page_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/diagnostics.md");
    let generated = generate();
    if std::env::var_os("FLOWC_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/diagnostics.md");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "docs/diagnostics.md is out of date: run `FLOWC_BLESS=1 cargo test --test docs`"
    );
}

#[test]
fn every_checker_code_has_a_rule_file() {
    for code in Code::ALL {
        let checker_phase = !matches!(&code.as_str()[1..2], "0" | "5");
        if checker_phase {
            assert!(
                rule_doc(*code).is_some(),
                "{} has no file src/check/rules/{}.rs",
                code,
                code.slug().replace('-', "_")
            );
        }
    }
}
