//! The one table from diagnostic code to rule.
//!
//! Codes are grouped by phase: `F0xxx` syntax, `F1xxx` names, `F2xxx` arguments
//! and schemas, `F3xxx` literals and domain rules, `F4xxx` flow structure,
//! `F5xxx` project configuration. A retired code is never reused. Every code
//! has a failing example under `tests/ui/<CODE>_<slug>/`; a test fails when one
//! is missing.

use serde::Serialize;

use super::Severity;

macro_rules! codes {
    ($($variant:ident = $code:literal, $slug:literal, $severity:ident, $summary:literal;)*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(
                #[doc = $summary]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as written in diagnostics, e.g. `F3001`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A short name of the rule, e.g. `phone-not-e164`.
            pub fn slug(self) -> &'static str {
                match self { $(Code::$variant => $slug,)* }
            }

            /// The severity a diagnostic with this code has.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// One sentence saying what the rule catches.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    SyntaxError = "F0001", "syntax-error", Error, "The text does not follow the flow syntax.";
    NestingTooDeep = "F0002", "nesting-too-deep", Error, "Brackets or operators nest deeper than the parser allows.";
    InvalidLiteral = "F0003", "invalid-literal", Error, "A number, duration or escape is out of range or malformed.";
    RepeatedOption = "F0004", "repeated-option", Error, "`debounce` or `via` is written twice after `on TRIGGER as NAME`, or `via` names a sender twice.";

    UnknownTrigger = "F1001", "unknown-trigger", Error, "A flow listens for a trigger that is not declared.";
    UnknownAction = "F1002", "unknown-action", Error, "A call names an action that is not declared.";
    UnknownField = "F1003", "unknown-field", Error, "A field is read that the value does not have.";
    UnknownVariable = "F1004", "unknown-variable", Error, "A name is used that no `let`, trigger or catch binds.";
    UnknownErrorKind = "F1005", "unknown-error-kind", Error, "A `catch` or `raises` names an error kind that is not declared.";
    DuplicateDefinition = "F1006", "duplicate-definition", Error, "A flow, declaration, field or parameter is defined twice.";
    UnknownType = "F1007", "unknown-type", Error, "A declaration uses a type that does not exist.";
    UnknownAttribute = "F1008", "unknown-attribute", Error, "A declaration carries an attribute or type argument the checker does not know, or one with wrong arguments.";

    UnknownArgument = "F2001", "unknown-argument", Error, "A call passes a named argument the action does not take.";
    MissingArgument = "F2002", "missing-argument", Error, "A call leaves out a required argument.";
    TypeMismatch = "F2003", "type-mismatch", Error, "A value has a different type than the place it is used in.";
    DuplicateArgument = "F2004", "duplicate-argument", Error, "A call passes the same argument twice.";
    TooManyArguments = "F2005", "too-many-arguments", Error, "A call passes more positional arguments than the action has parameters.";
    NoValue = "F2006", "no-value", Error, "The result of an action that returns nothing is used as a value.";
    OneOfArguments = "F2007", "one-of-arguments", Error, "A call passes none, or more than one, of a group of arguments of which it needs exactly one.";

    PhoneNotE164 = "F3001", "phone-not-e164", Error, "A phone number literal is not in strict E.164 format.";
    MessageTooLong = "F3002", "message-too-long", Error, "A message literal is longer than WhatsApp allows.";
    UnknownSender = "F3003", "unknown-sender", Error, "A sender is not listed in flow.toml.";
    UnknownTemplate = "F3004", "unknown-template", Error, "A template is not in the template catalog.";
    TemplateVariables = "F3005", "template-variables", Error, "Template variables do not match the template's placeholders.";
    UnknownAssistant = "F3006", "unknown-assistant", Error, "An assistant is not listed in flow.toml.";
    InvalidTimeZone = "F3007", "invalid-time-zone", Error, "A time zone is not an IANA time zone name.";
    OutsideWindow = "F3008", "outside-window", Error, "A free-text message is sent where the 24-hour window is closed.";
    WindowNotProven = "F3009", "window-not-proven", Warning, "A free-text message is sent where the 24-hour window may be closed.";
    MarketingWithoutOptOut = "F3010", "marketing-without-opt-out", Warning, "A marketing template offers no way to opt out.";
    InvalidPattern = "F3011", "invalid-pattern", Error, "A branch pattern is not a valid regular expression.";
    InvalidDateFormat = "F3012", "invalid-date-format", Error, "A date format string has an unknown `%` directive.";
    ItemCount = "F3013", "item-count", Error, "A list literal has more or fewer items than its declaration allows, e.g. four reply buttons.";
    TextTooLong = "F3014", "text-too-long", Error, "A text inside an argument (a button title, a row description) is longer than its declaration allows.";
    DuplicateItem = "F3015", "duplicate-item", Error, "Two items of a list literal share a value that must be unique, e.g. two buttons with the same id.";
    InvalidMedia = "F3016", "invalid-media", Error, "A media link or file literal cannot be sent: not an http(s) link, the wrong kind of file, or too large.";
    MediaFileMissing = "F3017", "media-file-missing", Warning, "A local media file named by a literal does not exist (yet).";
    TemplateParameters = "F3018", "template-parameters", Error, "The header or button parameters of a template send do not match the template.";

    CatchCannotRaise = "F4001", "catch-cannot-raise", Error, "A `catch` names an error kind that its statement cannot raise.";
    UnreachableCode = "F4002", "unreachable-code", Warning, "A statement or branch arm can never run.";
    RetryNotAction = "F4003", "retry-not-action", Error, "`retry` is attached to something other than a single action call.";
    FlowWithoutTrigger = "F4004", "flow-without-trigger", Error, "A flow has no `on` block, so nothing can start it.";
    UnsetAfterCatch = "F4005", "unset-after-catch", Error, "A variable is used after a caught error may have left it unset.";
    InvalidRetry = "F4006", "invalid-retry", Error, "A `retry` clause has a count, interval or backoff that cannot work.";
    CatchShadowed = "F4007", "catch-shadowed", Warning, "A `catch` comes after one that already catches everything it would.";
    UnknownReplyId = "F4008", "unknown-reply-id", Error, "A branch on a reply id has an arm for an id that no send in the project offers.";
    InvalidWait = "F4010", "invalid-wait", Error, "A `wait for` names a trigger that cannot be waited for, or waits for no time or longer than 30 days.";
    WaitElseContinues = "F4011", "wait-else-continues", Error, "The `else` block of `let NAME = wait for ...` can go on without a value for NAME.";
    UnhandledReplyId = "F4009", "unhandled-reply-id", Warning, "A branch on a reply id handles some choices of a send but not all of them.";
    ViaWithoutSender = "F4020", "via-without-sender", Error, "`via` limits a handler to some senders, but its trigger's events name no sender.";
    InvalidDebounce = "F4021", "invalid-debounce", Error, "`debounce` is used on a trigger without a customer, or with a pause outside 1 second to 10 minutes.";

    ConfigSyntax = "F5001", "config-syntax", Error, "flow.toml is not valid TOML or has the wrong shape.";
    ConfigValue = "F5002", "config-value", Error, "A value in flow.toml is invalid.";
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}
