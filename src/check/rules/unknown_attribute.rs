//! F1008 unknown-attribute: a declaration carries an attribute the checker
//! does not know, or one whose arguments do not fit.
//!
//! Why: attributes change what the checker and runtime do (`@opens_window`
//! lets a flow send free text); a misspelt one would silently do nothing.
//!
//! Known attributes: `@opens_window(FIELD)` on a trigger (FIELD is a Phone
//! field), `@reply(FIELD)` on a trigger (the text field carrying the id of
//! the choice a customer made), `@correlate(FIELD)` on a trigger (the
//! required field `wait for` matches its key against), `@requires_window(PARAM)` on an action (PARAM
//! is a Phone parameter), `@one_of(PARAM, PARAM, ...)` on an action (two or
//! more optional parameters, of which calls pass exactly one),
//! `@media(KIND)` on an action (it sends an image, document, audio, video or
//! sticker from its `link` or `file` parameter), `@offers(PATH)` on an
//! action (the ids of the choices it offers, e.g. `buttons.id`),
//! `@across(PATH, min: N, max: N, unique: FIELD)` on an action (limits on
//! the items of nested lists together, e.g. all rows of all sections),
//! `@retryable` on an error kind.
//!
//! The same code reports type arguments a type does not take: `Text` takes
//! `max: N`; lists take `min: N`, `max: N` and `unique: FIELD`.

use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{Attribute, Ident, TypeArg};

const KNOWN: &[(&str, &str, &str)] = &[
    ("trigger", "opens_window", "`@opens_window(FIELD)`"),
    ("trigger", "reply", "`@reply(FIELD)`"),
    ("trigger", "correlate", "`@correlate(FIELD)`"),
    ("action", "requires_window", "`@requires_window(PARAM)`"),
    ("action", "one_of", "`@one_of(PARAM, PARAM, ...)`"),
    ("action", "media", "`@media(KIND)`"),
    ("action", "offers", "`@offers(PARAM.FIELD)`"),
    (
        "action",
        "across",
        "`@across(PARAM.FIELD, min: N, max: N, unique: FIELD)`",
    ),
    ("error", "retryable", "`@retryable`"),
];

/// An attribute that does not belong on a `kind` declaration.
pub fn diagnostic(attr: &Attribute, kind: &str) -> Diagnostic {
    let allowed: Vec<&str> = KNOWN
        .iter()
        .filter(|(on, _, _)| *on == kind)
        .map(|(_, _, form)| *form)
        .collect();
    let known_elsewhere = KNOWN.iter().find(|(_, name, _)| *name == attr.name.name);
    let message = match known_elsewhere {
        Some((on, name, _)) if *on == kind => {
            format!("`@{name}` has the wrong arguments")
        }
        Some((on, name, _)) => {
            format!("`@{name}` belongs on {on} declarations, not on {kind} declarations")
        }
        None => format!("unknown attribute `@{}`", attr.name.name),
    };
    let help = if allowed.is_empty() {
        format!("{kind} declarations take no attributes")
    } else {
        format!("{kind} declarations take {}", allowed.join(", "))
    };
    Diagnostic::new(Code::UnknownAttribute, message)
        .with_label(attr.span, "not understood here")
        .with_help(help)
}

/// `@opens_window(x)` / `@requires_window(x)` naming something that is not a
/// required Phone field or parameter.
pub fn not_a_phone_field(attr: &Attribute, arg: &Ident, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::UnknownAttribute,
        format!("`@{}` needs a {what} of type Phone", attr.name.name),
    )
    .with_label(arg.span, format!("no required Phone {what} `{}`", arg.name))
    .with_help(format!(
        "name the {what} that holds the customer's phone number, e.g. `@{}(phone)`",
        attr.name.name
    ))
}

/// `@one_of(a, b)` naming something that is not an optional parameter.
pub fn not_an_optional_parameter(attr: &Attribute, arg: &Ident) -> Diagnostic {
    Diagnostic::new(
        Code::UnknownAttribute,
        format!("`@{}` needs optional parameters", attr.name.name),
    )
    .with_label(arg.span, format!("no optional parameter `{}`", arg.name))
    .with_help(
        "name two or more parameters declared with `?` or a default, e.g. `@one_of(link, file)`",
    )
}

/// An attribute argument that does not name what the attribute needs;
/// `why` completes "`x` ...".
pub fn bad_path(attr: &Attribute, arg: &Ident, why: &str) -> Diagnostic {
    let form = KNOWN
        .iter()
        .find(|(_, name, _)| *name == attr.name.name)
        .map_or("", |(_, _, form)| *form);
    Diagnostic::new(
        Code::UnknownAttribute,
        format!("`@{}` has the wrong arguments", attr.name.name),
    )
    .with_label(arg.span, format!("`{}` {why}", arg.name))
    .with_help(format!("write it as {form}"))
}

/// A type argument the type does not take; `allowed` lists what it takes.
pub fn bad_type_arg(arg: &TypeArg, on: &str, allowed: &str) -> Diagnostic {
    Diagnostic::new(
        Code::UnknownAttribute,
        format!("`{arg}` is not a limit {on} can have"),
    )
    .with_label(arg.span, "not understood here")
    .with_help(format!("{on} takes {allowed}"))
}
