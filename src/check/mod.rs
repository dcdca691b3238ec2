//! The checker: from parsed sources, declarations and flow.toml to a checked
//! [`Program`], or the diagnostics that say why not.
//!
//! ```
//! use flowc::check::Compiler;
//!
//! let mut compiler = Compiler::new();
//! compiler.add_source("follow_up.flow", r#"
//! flow follow_up
//! on call.ended as call {
//!     delay 10m
//!     whatsapp.send_template(sender: "office", template: "missed_you", to: call.customer_phone)
//! }
//! "#);
//! let checked = compiler.check();
//! assert!(checked.diagnostics.is_empty(), "{}", checked.render_plain());
//! let program = checked.program.unwrap();
//! assert_eq!(program.flows()[0].name, "follow_up");
//! ```
//!
//! A mistake becomes a diagnostic with a code, a label and help:
//!
//! ```
//! use flowc::check::Compiler;
//!
//! let mut compiler = Compiler::new();
//! compiler.add_source("bad.flow", r#"
//! flow bad
//! on call.ended as call {
//!     whatsapp.send_text(sender: "office", to: "0151/12345678", message: "hi")
//! }
//! "#);
//! let checked = compiler.check();
//! let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code.as_str()).collect();
//! assert_eq!(codes, ["F3008", "F3001"]);
//! assert!(checked.program.is_none());
//! ```

mod flows;
pub mod limits;
pub mod program;
mod replies;
pub mod rules;
pub mod schema;
pub mod test_defs;
pub mod types;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use program::{CheckedFlow, Program};
pub use schema::Schemas;
pub use test_defs::CheckedTest;

use crate::config::Config;
use crate::diag::render::{self, Style};
use crate::diag::Diagnostics;
use crate::source::{FileId, SourceMap};
use crate::syntax::{self, ast};

/// The standard declarations, embedded in the binary.
pub const STD_DECLARATIONS: &[(&str, &str)] = &[
    (
        "std_actions/errors.flow",
        include_str!("../../std_actions/errors.flow"),
    ),
    (
        "std_actions/core.flow",
        include_str!("../../std_actions/core.flow"),
    ),
    (
        "std_actions/whatsapp.flow",
        include_str!("../../std_actions/whatsapp.flow"),
    ),
    (
        "std_actions/ai.flow",
        include_str!("../../std_actions/ai.flow"),
    ),
    (
        "std_actions/call.flow",
        include_str!("../../std_actions/call.flow"),
    ),
];

/// Collects sources and configuration, then checks them together.
///
/// Declarations in any added source (`trigger`, `action`, `type`, `error`)
/// are visible to the flows of every source, as the standard ones are.
#[derive(Debug)]
pub struct Compiler {
    sources: SourceMap,
    modules: Vec<ast::Module>,
    config: Option<Config>,
    /// Where relative paths of local files in flows start.
    project_root: Option<PathBuf>,
    diagnostics: Diagnostics,
}

impl Default for Compiler {
    fn default() -> Self {
        Compiler::new()
    }
}

impl Compiler {
    /// A compiler with the standard declarations loaded.
    pub fn new() -> Self {
        // The standard declarations are parsed once per process: they always
        // take the first file ids, so their spans stay valid in every copy.
        static STD: OnceLock<Vec<ast::Module>> = OnceLock::new();
        let parsed = STD.get_or_init(|| {
            STD_DECLARATIONS
                .iter()
                .enumerate()
                .map(|(i, (_, text))| syntax::parse(FileId(i as u32), text).0)
                .collect()
        });
        let mut compiler = Compiler::without_std();
        for ((name, text), module) in STD_DECLARATIONS.iter().zip(parsed) {
            compiler.sources.add(*name, *text);
            compiler.modules.push(module.clone());
        }
        compiler
    }

    /// A compiler with no declarations at all, for hosts that bring their own.
    pub fn without_std() -> Self {
        Compiler {
            sources: SourceMap::new(),
            modules: Vec::new(),
            config: None,
            project_root: None,
            diagnostics: Diagnostics::new(),
        }
    }

    /// Adds and parses a `.flow` source; syntax errors are kept for
    /// [`Compiler::check`].
    pub fn add_source(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text: String = text.into();
        let id = self.sources.add(name, text.as_str());
        let (module, diagnostics) = syntax::parse(id, &text);
        self.modules.push(module);
        self.diagnostics.extend(diagnostics);
        id
    }

    /// Adds and parses the project configuration (the text of `flow.toml`).
    /// With a configuration, sender, template and assistant names are checked
    /// against it.
    ///
    /// The configuration's folder (from its name, a path) becomes the project
    /// root unless [`Compiler::set_project_root`] says otherwise: local files
    /// named in flows (`file: "brochures/solar.pdf"`) are looked for there.
    pub fn add_config(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text: String = text.into();
        let name: String = name.into();
        if self.project_root.is_none() {
            self.project_root = Some(
                Path::new(&name)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            );
        }
        let id = self.sources.add(name, text.as_str());
        let (config, diagnostics) = Config::parse(&text, id);
        self.diagnostics.extend(diagnostics);
        self.config = Some(config);
        id
    }

    /// Sets the project root: where relative paths of local files in flows
    /// start, as they do for the runtime. Without it, the folder of
    /// flow.toml, or without a configuration the folder of each flow file.
    pub fn set_project_root(&mut self, root: impl Into<PathBuf>) -> &mut Self {
        self.project_root = Some(root.into());
        self
    }

    /// Uses a configuration built in code.
    pub fn set_config(&mut self, config: Config) -> &mut Self {
        self.config = Some(config);
        self
    }

    /// Checks everything added. Never panics and never runs anything.
    pub fn check(self) -> Checked {
        let Compiler {
            sources,
            modules,
            config,
            project_root,
            mut diagnostics,
        } = self;

        let schemas = load_schemas(&modules, &mut diagnostics);

        let flows: Vec<&ast::Flow> = modules
            .iter()
            .flat_map(|m| &m.items)
            .filter_map(|item| match item {
                ast::Item::Flow(f) => Some(f),
                _ => None,
            })
            .collect();
        let files = flows::FileRoots {
            project_root,
            sources: &sources,
        };
        let mut checker =
            flows::FlowChecker::new(&schemas, config.as_ref(), files, &mut diagnostics);
        checker.check_flows(&flows);
        let mut called_by_flow = std::mem::take(&mut checker.called);
        let mut senders_by_flow = std::mem::take(&mut checker.senders);
        let test_defs: Vec<&ast::TestDef> = modules
            .iter()
            .flat_map(|m| &m.items)
            .filter_map(|item| match item {
                ast::Item::Test(t) => Some(t),
                _ => None,
            })
            .collect();
        let tests = test_defs::check_tests(
            &test_defs,
            &schemas,
            config.as_ref(),
            &sources,
            &mut diagnostics,
        );
        diagnostics.sort();

        let sources = Arc::new(sources);
        let program = (!diagnostics.has_errors()).then(|| Program {
            // The checked flows are the parsed ones, moved rather than
            // cloned: on a large project a copy of every handler's tree
            // costs a third as much as checking them.
            flows: modules
                .into_iter()
                .flat_map(|m| m.items)
                .filter_map(|item| match item {
                    ast::Item::Flow(f) => Some(CheckedFlow {
                        called_actions: called_by_flow.remove(&f.name.name).unwrap_or_default(),
                        named_senders: senders_by_flow.remove(&f.name.name).unwrap_or_default(),
                        name: f.name.name,
                        handlers: f.handlers,
                    }),
                    _ => None,
                })
                .collect(),
            schemas: Arc::new(schemas),
            tests,
            config: Arc::new(config.unwrap_or_default()),
            sources: sources.clone(),
        });
        Checked {
            sources,
            diagnostics,
            program,
        }
    }
}

/// The result of a check: all diagnostics, and the program when there were
/// no errors (warnings allowed).
#[derive(Debug, Clone)]
pub struct Checked {
    /// Every file that took part, for rendering.
    pub sources: Arc<SourceMap>,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Diagnostics,
    /// The checked program, if there were no errors.
    pub program: Option<Program>,
}

impl Checked {
    /// All diagnostics rendered without colour, as `flowc check` prints them
    /// to a pipe.
    pub fn render_plain(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| render::human(d, &self.sources, Style::Plain, 100))
            .collect()
    }

    /// The program, or an error holding the diagnostics.
    pub fn into_result(self) -> Result<Program, CheckError> {
        match self.program {
            Some(program) => Ok(program),
            None => Err(CheckError {
                sources: self.sources,
                diagnostics: self.diagnostics,
            }),
        }
    }
}

/// Sources that did not pass the checker. Its `Debug` is the rendered
/// diagnostics, so `program.expect("...")` shows what is wrong.
#[derive(Clone)]
pub struct CheckError {
    /// Every file that took part.
    pub sources: Arc<SourceMap>,
    /// What was found.
    pub diagnostics: Diagnostics,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.diagnostics.error_count();
        writeln!(
            f,
            "the flows have {errors} error{}",
            if errors == 1 { "" } else { "s" }
        )?;
        for d in self.diagnostics.iter() {
            f.write_str(&render::human(d, &self.sources, Style::Plain, 100))?;
        }
        Ok(())
    }
}

impl fmt::Debug for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for CheckError {}

/// The schemas declared by `modules` (standard declarations first, then the
/// project's), with mistakes in the declarations reported to `diagnostics`.
pub(crate) fn load_schemas<'a>(
    modules: impl IntoIterator<Item = &'a ast::Module>,
    diagnostics: &mut Diagnostics,
) -> Schemas {
    let declarations: Vec<&ast::Declaration> = modules
        .into_iter()
        .flat_map(|m| &m.items)
        .filter_map(|item| match item {
            ast::Item::Declaration(d) => Some(d),
            _ => None,
        })
        .collect();
    let mut schemas = Schemas::default();
    schema::load(&mut schemas, &declarations, diagnostics);
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(source: &str) -> Vec<String> {
        let mut compiler = Compiler::new();
        compiler.add_source("t.flow", source);
        compiler
            .check()
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect()
    }

    #[test]
    fn interpolating_none_or_nothing_says_so() {
        assert_eq!(
            messages(
                "flow f\non call.ended as c {\n    log(\"{none}\")\n    log(\"{log(\"x\")}\")\n}\n"
            ),
            [
                "F2003: an interpolated value must be String, found none",
                "F2006: `log` returns no value"
            ]
        );
    }

    #[test]
    fn phone_literals_in_lists_are_checked() {
        let source = "action bulk.send(to: [Phone])\nflow f\non call.ended as c {\n    bulk.send(to: [\"+4915112345678\", \"0151/1\"])\n}\n";
        assert_eq!(
            messages(source),
            ["F3001: phone number is not in E.164 format"]
        );
    }

    #[test]
    fn empty_literals_read_as_written() {
        assert_eq!(
            messages("flow f\non call.ended as c {\n    log([])\n    log({})\n}\n"),
            [
                "F2003: argument `message` must be String, found []",
                "F2003: argument `message` must be String, found {}"
            ]
        );
    }

    #[test]
    fn long_else_if_chains_are_flat() {
        let mut source =
            String::from("flow f\non call.ended as c {\n    if c.outcome == \"0\" { stop }");
        for i in 1..5_000 {
            source.push_str(&format!(" else if c.outcome == \"{i}\" {{ stop }}"));
        }
        source.push_str(" else { log(\"none matched\") }\n}\n");
        assert_eq!(messages(&source), Vec::<String>::new());
    }

    use crate::config::{TemplateButtonConfig, TemplateButtonKind, TemplateHeaderConfig};
    use crate::media::MediaKind;
    use crate::source::FileId;

    const CONFIG: &str = "[senders.office]\nphone_number_id = \"1\"\n\n[templates.order_shipped]\nlanguage = \"en\"\ncategory = \"utility\"\nbody = \"Your order is on its way.\"\n";

    /// A configuration whose `order_shipped` template has `header` and
    /// `buttons` (built in code until flow.toml parses them).
    fn config_with(
        header: Option<TemplateHeaderConfig>,
        buttons: Vec<TemplateButtonConfig>,
    ) -> Config {
        let (mut config, diagnostics) = Config::parse(CONFIG, FileId(99));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let template = config.templates.get_mut("order_shipped").expect("template");
        template.header = header;
        template.buttons = buttons;
        config
    }

    fn button(kind: TemplateButtonKind, text: &str, url: Option<&str>) -> TemplateButtonConfig {
        TemplateButtonConfig {
            kind,
            text: text.into(),
            url: url.map(String::from),
        }
    }

    fn messages_with(source: &str, config: Config) -> Vec<String> {
        let mut compiler = Compiler::new();
        compiler.add_source("t.flow", source);
        compiler.set_config(config);
        compiler
            .check()
            .diagnostics
            .iter()
            .map(|d| {
                format!(
                    "{}: {} / {}",
                    d.code,
                    d.message,
                    d.primary.as_ref().map_or("", |l| l.text.as_str())
                )
            })
            .collect()
    }

    fn template_send(args: &str) -> String {
        format!("flow f\non call.ended as c {{\n    whatsapp.send_template(sender: \"office\", template: \"order_shipped\", to: c.customer_phone{args})\n}}\n")
    }

    #[test]
    fn template_headers_are_required_refused_and_checked() {
        let image = || {
            config_with(
                Some(TemplateHeaderConfig::Media(MediaKind::Image)),
                Vec::new(),
            )
        };
        assert_eq!(
            messages_with(&template_send(""), image()),
            ["F3018: template `order_shipped` needs `header:` / its header is an image, and no `header:` is given"]
        );
        assert_eq!(
            messages_with(&template_send(", header: \"https://x.example/order.pdf\""), image()),
            ["F3016: a PDF file cannot be sent as an image / application/pdf; an image must be JPEG or PNG, at most 5 MB"]
        );
        assert!(messages_with(
            &template_send(", header: \"https://x.example/order.png\""),
            image()
        )
        .is_empty());
        assert!(messages_with(&template_send(", header: \"4711\""), image()).is_empty());
        assert_eq!(
            messages_with(
                &template_send(", header: \"Hi\""),
                config_with(None, Vec::new())
            ),
            ["F3018: template `order_shipped` takes no `header:` / the template has no header"]
        );
    }

    #[test]
    fn template_buttons_take_one_value_per_parameter() {
        let buttons = || {
            config_with(
                None,
                vec![
                    button(TemplateButtonKind::QuickReply, "Yes", None),
                    button(TemplateButtonKind::PhoneNumber, "Call us", None),
                    button(
                        TemplateButtonKind::Url,
                        "Track",
                        Some("https://shop.example/track/{{1}}"),
                    ),
                ],
            )
        };
        let missing = messages_with(&template_send(""), buttons());
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].contains("its buttons take 2 parameters and no `buttons:` is given"));
        let mut compiler = Compiler::new();
        compiler.add_source("t.flow", template_send(", buttons: [\"YES\"]"));
        compiler.set_config(buttons());
        let checked = compiler.check();
        let help = checked
            .diagnostics
            .iter()
            .next()
            .and_then(|d| d.help.clone());
        assert_eq!(
            help.as_deref(),
            Some("pass one value per button that takes one, in order: the payload of quick-reply button \"Yes\", then the end of the link of URL button \"Track\" (https://shop.example/track/{{1}})")
        );
        assert!(messages_with(
            &template_send(", buttons: [\"YES\", \"order-1\"]"),
            buttons()
        )
        .is_empty());
        assert_eq!(
            messages_with(&template_send(", buttons: [\"\", \"https://shop.example/track/1\"]"), buttons()),
            [
                "F3018: this is not a valid parameter for button \"Yes\" / an empty payload",
                "F3018: this is not a valid parameter for button \"Track\" / a whole link, but the template has the start of it",
            ]
        );
        // Quick replies alone may go without payloads: their texts are sent.
        let quick = config_with(
            None,
            vec![button(TemplateButtonKind::QuickReply, "Yes", None)],
        );
        assert!(messages_with(&template_send(""), quick).is_empty());
    }

    #[test]
    fn a_copy_code_button_needs_its_code() {
        let coupon = || {
            config_with(
                None,
                vec![button(
                    TemplateButtonKind::CopyCode,
                    "Copy offer code",
                    None,
                )],
            )
        };
        assert_eq!(
            messages_with(&template_send(""), coupon()),
            ["F3018: button parameters do not match template `order_shipped` / its buttons take 1 parameter and no `buttons:` is given"]
        );
        assert!(messages_with(&template_send(", buttons: [\"SPRING25\"]"), coupon()).is_empty());
        assert_eq!(
            messages_with(&template_send(", buttons: [\"SPRING-SALE-2026-25\"]"), coupon()),
            ["F3018: this is not a valid parameter for button \"Copy offer code\" / a code longer than the 15 characters WhatsApp allows"]
        );
    }

    #[test]
    fn template_quick_replies_are_offered_reply_ids() {
        let config = || {
            config_with(
                None,
                vec![
                    button(TemplateButtonKind::QuickReply, "Yes", None),
                    button(TemplateButtonKind::QuickReply, "Stop", None),
                ],
            )
        };
        let reply = |arms: &str| {
            format!(
                "{}flow g\non whatsapp.message_received as msg {{\n    branch msg.reply_id ?? \"\" {{\n{arms}        _ => stop\n    }}\n}}\n",
                template_send("")
            )
        };
        // Without payloads, the buttons' texts come back.
        assert!(messages_with(
            &reply("        \"Yes\" => stop\n        \"Stop\" => stop\n"),
            config()
        )
        .is_empty());
        assert_eq!(
            messages_with(&reply("        \"Yes\" => stop\n"), config()),
            ["F4009: this branch has no arm for \"Stop\" offered by `whatsapp.send_template` / handles other choices of the same `whatsapp.send_template` but not \"Stop\""]
        );
        assert_eq!(
            messages_with(&reply("        \"yes\" => stop\n"), config()),
            ["F4008: no send offers the reply id \"yes\" / this arm never runs"]
        );
    }

    #[test]
    fn reply_branches_stay_quiet_when_ids_are_computed() {
        let source = "flow f\non whatsapp.message_received as msg {\n    whatsapp.send_buttons(sender: msg.sender_id, to: msg.phone, body: \"?\", buttons: [{ id: msg.text, title: \"A\" }])\n    branch msg.reply_id ?? \"\" {\n        \"anything\" => stop\n        _ => stop\n    }\n}\n";
        assert_eq!(messages(source), Vec::<String>::new());
    }

    #[test]
    fn partly_literal_values_are_checked_where_known() {
        let source = "flow f\non whatsapp.message_received as msg {\n    whatsapp.send_buttons(sender: msg.sender_id, to: msg.phone, body: \"?\", buttons: [\n        { id: \"a\", title: msg.text },\n        { id: \"b\", title: \"{msg.text} and twenty more chars\" },\n        { id: msg.text, title: \"C\" },\n        { id: \"d\", title: \"D\" },\n    ])\n}\n";
        assert_eq!(
            messages(source),
            [
                "F3014: `buttons.title` is longer than 20 characters",
                "F3013: `buttons` takes at most 3 buttons",
            ]
        );
    }

    #[test]
    fn one_of_needs_exactly_one() {
        let source = "flow f\non whatsapp.message_received as msg {\n    whatsapp.send_audio(sender: msg.sender_id, to: msg.phone, link: none)\n}\n";
        assert_eq!(
            messages(source),
            ["F2007: `whatsapp.send_audio` needs one of `link`, `media_id` or `file`"]
        );
    }

    #[test]
    fn media_links_and_files_are_checked() {
        let send = |args: &str| {
            format!("flow f\non whatsapp.message_received as msg {{\n    whatsapp.send_sticker(sender: msg.sender_id, to: msg.phone, {args})\n}}\n")
        };
        assert_eq!(
            messages(&send("link: \"ftp://example.com/a.webp\"")),
            ["F3016: media link is not an http(s) address"]
        );
        assert_eq!(
            messages(&send("link: \"https://example.com/{msg.text}.png\"")),
            ["F3016: a PNG file cannot be sent as a sticker"]
        );
        assert!(messages(&send("link: \"https://{msg.text}\"")).is_empty());

        let dir = tempfile::tempdir().expect("temp dir");
        let big = std::fs::File::create(dir.path().join("big.webp")).expect("create");
        big.set_len(600 * 1024).expect("size");
        std::fs::write(dir.path().join("small.webp"), b"RIFF").expect("write");
        let check = |args: &str| {
            let mut compiler = Compiler::new();
            compiler.add_source("t.flow", send(args));
            compiler.set_project_root(dir.path());
            compiler
                .check()
                .diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.code, d.message))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            check("file: \"big.webp\""),
            ["F3016: media file is too large"]
        );
        assert!(check("file: \"small.webp\"").is_empty());
        assert_eq!(
            check("file: \"missing.webp\""),
            ["F3017: media file `missing.webp` does not exist"]
        );
    }

    #[test]
    fn limits_and_attributes_in_declarations_are_checked() {
        let source = "type Row { id: String, n: Int }\n@across(rows.id, max: 2)\n@media(gif)\naction x.send(rows: [Row](min: 1, unique: n, most: 2), title: Text(max: 3, min: 1), file: String?)\n";
        assert_eq!(
            messages(source),
            [
                "F1008: `@across` has the wrong arguments",
                "F1008: `@media` has the wrong arguments",
                "F1008: `unique: n` is not a limit a list can have",
                "F1008: `most: 2` is not a limit a list can have",
                "F1008: `min: 1` is not a limit Text can have",
            ]
        );
    }

    #[test]
    fn trigger_defaults_fill_events_and_tests() {
        let source = "flow f\non whatsapp.message_received as msg {\n    log(msg.kind)\n}\ntest \"no kind\" {\n    given whatsapp.message_received { phone: \"+4915112345678\", text: \"hi\", sender_id: \"office\", timestamp: \"2026-01-01T10:00:00Z\", conversation_id: \"c\", message_id: \"m\" }\n    expect { log(\"text\") completes }\n}\ntrigger x.happened {\n    n: Int = \"one\"\n}\n";
        assert_eq!(
            messages(source),
            ["F2003: the default value must be Int, found String"]
        );
    }
}
