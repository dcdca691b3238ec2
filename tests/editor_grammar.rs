//! The VS Code grammar highlights the language's keywords: the words of the
//! `keyword` rule in `grammar/flow.pest` must be exactly the words of the
//! `keywords` patterns in `editors/vscode/syntaxes/flow.tmLanguage.json`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// The quoted words of the pest rule `keyword = _{ ... }`.
fn pest_keywords() -> BTreeSet<String> {
    let grammar = read("grammar/flow.pest");
    let start = grammar
        .find("\nkeyword = ")
        .expect("grammar/flow.pest has a `keyword` rule");
    let rule = &grammar[start..];
    let end = rule[1..].find("\n}").expect("the rule ends with `}`") + 1;
    let body = &rule[..end];
    body.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The words of the `\b(?:a|b|c)\b` patterns of the grammar's `keywords`.
fn textmate_keywords() -> BTreeSet<String> {
    let json: Value = serde_json::from_str(&read("editors/vscode/syntaxes/flow.tmLanguage.json"))
        .expect("the TextMate grammar is JSON");
    let patterns = json["repository"]["keywords"]["patterns"]
        .as_array()
        .expect("repository.keywords.patterns");
    let mut words = BTreeSet::new();
    for pattern in patterns {
        let regex = pattern["match"].as_str().expect("a match pattern");
        let inner = regex
            .strip_prefix(r"\b(?:")
            .and_then(|r| r.strip_suffix(r")\b"))
            .unwrap_or_else(|| panic!("keyword pattern {regex} is not \\b(?:a|b)\\b"));
        words.extend(inner.split('|').map(str::to_string));
    }
    words
}

#[test]
fn highlighted_keywords_are_the_grammars_keywords() {
    let pest = pest_keywords();
    assert!(
        pest.contains("flow") && pest.contains("matches"),
        "{pest:?}"
    );
    let textmate = textmate_keywords();
    let missing: Vec<_> = pest.difference(&textmate).collect();
    let extra: Vec<_> = textmate.difference(&pest).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "editors/vscode/syntaxes/flow.tmLanguage.json keywords differ from grammar/flow.pest: \
         missing {missing:?}, not keywords {extra:?}"
    );
}

#[test]
fn the_extension_manifest_names_the_language_and_the_server_setting() {
    let json: Value =
        serde_json::from_str(&read("editors/vscode/package.json")).expect("package.json is JSON");
    let language = &json["contributes"]["languages"][0];
    assert_eq!(language["id"], "flow");
    assert_eq!(language["extensions"][0], ".flow");
    assert!(json["contributes"]["configuration"]["properties"]["flow.server.path"].is_object());
    for file in [
        "language-configuration.json",
        "syntaxes/flow.tmLanguage.json",
    ] {
        let text = read(&format!("editors/vscode/{file}"));
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}
